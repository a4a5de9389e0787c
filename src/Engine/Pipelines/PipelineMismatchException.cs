namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// A request asks a model for a pipeline its variant does not serve (a mask for a base model, an upscale with a
/// non-upscaler, …). The message names the model's variant and the pipeline asked for.
/// </summary>
public sealed class PipelineMismatchException : InvalidOperationException
{
    public PipelineMismatchException(ModelKind variant, PipelineKind requested, string source, string detail)
        : base($"The model '{source}' is a {variant.DisplayName()} model ({variant.UnetInChannels()}-channel UNet); " +
               $"it cannot run the {requested.ToString().ToLowerInvariant()} pipeline: {detail} " +
               $"It serves: " +
               $"{string.Join(", ", variant.SupportedPipelines().Select(k => k.ToString().ToLowerInvariant()))}.")
    {
        ModelKind = variant;
        Requested = requested;
    }

    public ModelKind ModelKind { get; }
    public PipelineKind Requested { get; }
}
