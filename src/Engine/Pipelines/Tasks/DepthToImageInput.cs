using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Depth-to-image with a 5-channel depth model (diffusers' StableDiffusionDepth2ImgPipeline).</summary>
public sealed record DepthToImageInput : ImageTaskInput
{
    public override PipelineKind Kind => PipelineKind.Depth2Img;

    /// <summary>[1, H, W] (or [H, W], [1, 1, H, W]) depth map, any scale and size (min-max normalised).</summary>
    public Tensor? DepthMap { get; init; }

    /// <summary>How much of the schedule to run from the image, in (0, 1].</summary>
    public double Strength { get; init; } = 0.8;
}
