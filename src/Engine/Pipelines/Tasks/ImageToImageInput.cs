namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Image-to-image (diffusers' StableDiffusionImg2ImgPipeline). On a depth model it runs as
/// depth-to-image.</summary>
public sealed record ImageToImageInput : ImageTaskInput
{
    public override PipelineKind Kind => PipelineKind.Img2Img;

    /// <summary>How much of the schedule to run from the image (diffusers' strength), in (0, 1]; 1 fully
    /// re-noises it.</summary>
    public double Strength { get; init; } = 0.8;
}
