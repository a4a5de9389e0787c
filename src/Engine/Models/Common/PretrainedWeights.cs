using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// The one place where a diffusers component's weights are read from its safetensors file into a module: strictly,
/// key for key, through <see cref="StateDictLoader"/> (which names the key and file of any mismatch).
/// <see cref="Materialize"/> is the fast path the <c>FromPretrained</c> methods take: the module is built on the
/// <c>meta</c> device (no storage, no random initialisation) and each weight is read once into its final storage.
/// </summary>
internal static class PretrainedWeights
{
    /// <summary>
    /// Gives <paramref name="model"/>, built on the <c>meta</c> device, its weights from <paramref name="safetensorsPath"/>
    /// as new tensors of <paramref name="dtype"/> on <paramref name="device"/> (strict: a missing, unexpected or misshapen key names the key and file).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="ModelLoadException">A key is missing, unexpected, or has another shape.</exception>
    internal static void Materialize(nn.Module model, string safetensorsPath, ScalarType dtype, Device device,
        IReadOnlySet<string>? ignoredKeys = null)
    {
        if (!File.Exists(safetensorsPath)) throw new FileNotFoundException($"Weights file not found: '{safetensorsPath}'.", safetensorsPath);
        using var noGrad = torch.no_grad();
        StateDictLoader.Materialize(model, new[] { safetensorsPath }, dtype, device,
            ignoredKeys is null ? null : key => ignoredKeys.Contains(key) ? null : key);
    }
}
