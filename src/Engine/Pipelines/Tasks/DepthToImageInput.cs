using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Depth-to-image with a 5-channel depth model (diffusers' StableDiffusionDepth2ImgPipeline).</summary>
public sealed record DepthToImageInput : ImageTaskInput
{
    public override PipelineKind Kind => PipelineKind.Depth2Img;

    /// <summary>[1, H, W] (or [H, W], [1, 1, H, W]) depth map, any scale and size (min-max normalised). Null: the
    /// model's depth estimator (MiDaS DPT-Hybrid) estimates it from <see cref="ImageTaskInput.Image"/>, as
    /// diffusers does.</summary>
    public Tensor? DepthMap { get; init; }

    /// <summary>Set on the input as it ran when the depth was estimated: the estimator's name and
    /// weights hash.</summary>
    public string? DepthEstimator { get; init; }

    /// <inheritdoc cref="DepthEstimator"/>
    public string? DepthEstimatorHash { get; init; }

    /// <summary>How much of the schedule to run from the image, in (0, 1].</summary>
    public double Strength { get; init; } = 0.8;
}
