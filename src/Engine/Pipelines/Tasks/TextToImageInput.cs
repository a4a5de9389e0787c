namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Text-to-image: the prompt alone (diffusers' StableDiffusionPipeline).</summary>
public sealed record TextToImageInput : TaskInput
{
    public override PipelineKind Kind => PipelineKind.Txt2Img;
}
