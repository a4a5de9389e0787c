namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>The x4 upscaler (diffusers' StableDiffusionUpscalePipeline); Width/Height of the request are the
/// output size.</summary>
public sealed record UpscaleInput : ImageTaskInput
{
    public override PipelineKind Kind => PipelineKind.Upscale;

    /// <summary>Noise level (class label) added to the low-res image,
    /// 0..<see cref="UpscaleTask.MaxNoiseLevel"/>.</summary>
    public int NoiseLevel { get; init; } = 20;
}
