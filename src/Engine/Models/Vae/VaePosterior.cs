using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Vae;

/// <summary>The diagonal Gaussian posterior q(z|x) the VAE encoder returns; disposing it disposes
/// both tensors.</summary>
/// <param name="Mean">[B, latent_channels, h, w]</param>
/// <param name="Std">[B, latent_channels, h, w] = exp(0.5 · clamp(logvar, -30, 20))</param>
public sealed record VaePosterior(Tensor Mean, Tensor Std) : IDisposable
{
    /// <summary>mean + std · noise (diffusers' <c>latent_dist.sample</c> with the noise drawn by the caller).</summary>
    public Tensor Sample(Tensor noise) => Mean.ScalarSafe() + Std.ScalarSafe() * noise;

    public void Dispose()
    {
        Mean.Dispose();
        Std.Dispose();
    }
}
