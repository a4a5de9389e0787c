using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// A model produced NaN or infinite values (NaN weights, or a UNet/VAE that overflows in a half precision), which would
/// otherwise become a silent all-black image. Names the stage and, for the UNet, the step.
/// </summary>
public sealed class NonFiniteOutputException(string stage, int? step, int stepCount)
    : Exception(
        $"The {stage} produced NaN or infinite values{(step is { } s ? $" at step {s} of {stepCount}" : "")}: " +
        "the model's weights hold NaN or Inf, or its arithmetic overflowed in this precision. Try -Precision float32 " +
        "(and check the model file); no image was made.")
{
    /// <summary>"UNet" or "VAE decoder".</summary>
    public string Stage { get; } = stage;

    /// <summary>The 1-based denoising step, for the UNet.</summary>
    public int? Step { get; } = step;

    /// <summary>Throws when <paramref name="tensor"/> holds a NaN or an infinity. One fused reduction over the tensor
    /// and one scalar read: for a UNet output (a few hundred KB) well under a millisecond.</summary>
    public static void ThrowIfNotFinite(Tensor tensor, string stage, int? step = null, int stepCount = 0)
    {
        using var scope = torch.NewDisposeScope();
        if (!tensor.isfinite().all().item<bool>()) throw new NonFiniteOutputException(stage, step, stepCount);
    }
}
