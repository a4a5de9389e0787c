using System.Diagnostics;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The loop every pipeline runs: for each timestep, the model's prediction (UNet with guidance in the pipelines, any
/// function in tests), then <c>scheduler.step</c> with the pipeline's noise source; one dispose scope per step,
/// cancellation between steps, progress after each.
/// </summary>
public static class DenoisingLoop
{
    /// <summary>Predicts the model output for <c>latents</c> at timestep <c>t</c>; <c>name</c> is "stepNN".</summary>
    public delegate Tensor Denoiser(Tensor latents, double t, string name);

    /// <summary>Runs the loop from <paramref name="latents"/> and returns the final latents (owned by the
    /// caller's scope).</summary>
    public static Tensor Run(
        SchedulerBase scheduler, IReadOnlyList<double> timesteps, Tensor latents, INoiseSource noise,
        PipelineObserver observer, Denoiser denoise)
    {
        var clock = Stopwatch.StartNew();
        var input = latents;
        for (int i = 0; i < timesteps.Count; i++)
        {
            observer.Cancellation.ThrowIfCancellationRequested();
            using var stepScope = torch.NewDisposeScope();
            double t = timesteps[i];
            var name = $"step{i:D2}";
            var prediction = denoise(latents, t, name);                                           // [N, 4, h, w]
            // NaN weights or an overflow would otherwise run to a black image reported as a success.
            NonFiniteOutputException.ThrowIfNotFinite(prediction, "UNet", i + 1, timesteps.Count);
            observer.Inspect?.Invoke(name + "_noise_pred", prediction);
            observer.Inspect?.Invoke(name + "_sample_in", latents);
            var next = scheduler.Step(prediction, t, latents, noise);                             // [N, 4, h, w]
            observer.Inspect?.Invoke(name + "_latents", next);
            var previous = latents;
            latents = next.MoveToOuterDisposeScope();
            // The step before's latents are done with (schedulers keep their own detached handles); the
            // caller's input is not ours.
            if (!ReferenceEquals(previous, input) && !ReferenceEquals(previous, latents)) previous.Dispose();
            observer.Progress?.Invoke(new StepProgress(i + 1, timesteps.Count, clock.Elapsed));
        }
        return latents;
    }
}
