namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>
/// What one task starts from, beside the settings every task shares (<see cref="GenerationRequest"/>): nothing for
/// text-to-image, an image for the others, plus what only that task reads (mask, depth map, strength, noise level).
/// </summary>
public abstract record TaskInput
{
    /// <summary>The pipeline this input asks for. A model may run it as another (an image on a depth model is
    /// depth-to-image); <see cref="PipelineTask.For"/> decides.</summary>
    public abstract PipelineKind Kind { get; }
}
