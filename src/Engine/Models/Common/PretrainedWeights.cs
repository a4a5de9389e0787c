using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// The one place where model weights are read from a safetensors file into a module, key for key (strict).
/// Kept apart so a hardened loader can replace it without touching the models.
/// </summary>
internal static class PretrainedWeights
{
    /// <summary>Loads every tensor of <paramref name="safetensorsPath"/> into <paramref name="model"/>, which must have exactly the same keys and shapes.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">A key is missing, unexpected, or has another shape.</exception>
    internal static void LoadInto(nn.Module model, string safetensorsPath, ScalarType dtype, Device device)
    {
        if (!File.Exists(safetensorsPath)) throw new FileNotFoundException($"Weights file not found: {safetensorsPath}", safetensorsPath);
        using var file = SafeTensorsFile.Open(safetensorsPath);
        var expected = model.state_dict();
        var missing = expected.Keys.Where(k => !file.Tensors.ContainsKey(k)).ToList();
        var unexpected = file.Tensors.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"{safetensorsPath} does not match {model.GetName()}: missing [{string.Join(", ", missing.Take(10))}]" +
                $"{(missing.Count > 10 ? $" (+{missing.Count - 10} more)" : "")}, unexpected [{string.Join(", ", unexpected.Take(10))}]" +
                $"{(unexpected.Count > 10 ? $" (+{unexpected.Count - 10} more)" : "")}.");
        foreach (var (key, target) in expected)
        {
            // load_state_dict broadcasts silently on a shape mismatch, so check first.
            var shape = file.Tensors[key].Shape;
            if (!shape.SequenceEqual(target.shape))
                throw new InvalidDataException(
                    $"{safetensorsPath}: '{key}' has shape [{string.Join(", ", shape)}], the model expects [{string.Join(", ", target.shape)}].");
        }

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var key in expected.Keys) tensors[key] = file.Read(key, dtype, device);
            using var noGrad = torch.no_grad();
            model.load_state_dict(tensors, strict: true);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }
}
