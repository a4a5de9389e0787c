using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// How every diffusers component (text encoder, UNet, VAE) gets its weights, for the models' <c>FromPretrained</c> and
/// for <see cref="DiffusersFolderLoader"/>: the module is built on the <c>meta</c> device (no storage, no random
/// initialisation), then <see cref="StateDictLoader.Materialize"/> reads each weight once into its final storage,
/// strictly (a missing, unexpected or misshapen key names the key and file).
/// </summary>
internal static class PretrainedWeights
{
    /// <summary>
    /// Builds a module with <paramref name="buildOn"/>(<c>torch.META</c>) and gives it the weights of
    /// <paramref name="files"/> (one file, or the shards of one) as tensors of <paramref name="dtype"/> on
    /// <paramref name="device"/>; returns it in eval mode, without gradients. A failed load disposes the module.
    /// </summary>
    /// <param name="what">The component, for the message when a file is missing ("UNet", "VAE", ...).</param>
    /// <param name="ignoredKeys">File keys that map to no module tensor and are skipped.</param>
    /// <exception cref="FileNotFoundException">A weights file does not exist.</exception>
    /// <exception cref="ModelLoadException">A key is missing, unexpected, or has another shape.</exception>
    internal static T Load<T>(
        string what, Func<Device, T> buildOn, IReadOnlyList<string> files, ScalarType dtype, Device device,
        IReadOnlySet<string>? ignoredKeys = null) where T : nn.Module
    {
        foreach (var file in files)
            if (!File.Exists(file)) throw new FileNotFoundException($"{what} weights not found: '{file}'.", file);
        var model = buildOn(torch.META);
        try
        {
            using var noGrad = torch.no_grad();
            StateDictLoader.Materialize(model, files, dtype, device,
                ignoredKeys is null ? null : key => ignoredKeys.Contains(key) ? null : key);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }
}
