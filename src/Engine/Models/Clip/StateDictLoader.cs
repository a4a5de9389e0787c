using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>
/// Strict safetensors → module weight loading (interim: a shared strict loader is planned to replace it).
/// </summary>
internal static class StateDictLoader
{
    /// <summary>
    /// Copies every tensor of <paramref name="path"/> into <paramref name="module"/>: the keys must match the
    /// module's state dict exactly (except <paramref name="ignoredKeys"/>), and so must every shape.
    /// </summary>
    /// <exception cref="InvalidDataException">Keys missing, unexpected, or of the wrong shape; the message names them.</exception>
    internal static void LoadSafeTensors(nn.Module module, string path, ScalarType dtype, Device device,
        IReadOnlySet<string> ignoredKeys)
    {
        using var file = SafeTensorsFile.Open(path);
        var expected = module.state_dict();
        var fileKeys = file.Tensors.Keys.Where(k => !ignoredKeys.Contains(k)).ToHashSet(StringComparer.Ordinal);

        var missing = expected.Keys.Where(k => !fileKeys.Contains(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = fileKeys.Where(k => !expected.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"'{path}' does not match {module.GetName()}: " +
                $"{missing.Count} missing key(s) [{string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", ..." : "")}], " +
                $"{unexpected.Count} unexpected key(s) [{string.Join(", ", unexpected.Take(10))}{(unexpected.Count > 10 ? ", ..." : "")}].");

        // load_state_dict's copy_ would broadcast a smaller tensor silently, so shapes are checked first.
        foreach (var key in fileKeys)
        {
            var fileShape = file.Tensors[key].Shape;
            var moduleShape = expected[key].shape;
            if (!fileShape.SequenceEqual(moduleShape))
                throw new InvalidDataException(
                    $"'{path}': tensor '{key}' has shape [{string.Join(", ", fileShape)}], " +
                    $"the model expects [{string.Join(", ", moduleShape)}].");
        }

        using var scope = NewDisposeScope();
        var source = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var key in fileKeys) source[key] = file.Read(key, dtype, device);
        module.load_state_dict(source, strict: true);
    }
}
