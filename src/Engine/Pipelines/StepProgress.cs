namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>A denoising step finished.</summary>
public sealed record StepProgress(int Step, int TotalSteps, TimeSpan Elapsed)
{
    public TimeSpan? Remaining => Step == 0 ? null : Elapsed / Step * (TotalSteps - Step);
}
