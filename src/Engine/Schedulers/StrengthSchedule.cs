using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>The denoising-loop slice an img2img-style pipeline runs for a given strength.</summary>
/// <param name="Timesteps">The timesteps to run (a slice of <see cref="SchedulerBase.Timesteps"/>).</param>
/// <param name="NumInferenceSteps">The number of (user-level) steps that remain.</param>
/// <param name="BeginIndex">Index of the first timestep in the full schedule (passed to
/// <see cref="SchedulerBase.SetBeginIndex"/>).</param>
public sealed record StrengthSchedule(Tensor Timesteps, int NumInferenceSteps, int BeginIndex);
