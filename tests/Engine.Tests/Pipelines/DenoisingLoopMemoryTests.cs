using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>The denoising loop holds one step's latents at a time, whatever the step count.</summary>
public class DenoisingLoopMemoryTests
{
    [Theory]
    [InlineData("DPMSolverMultistep")] // keeps past model outputs
    [InlineData("HeunDiscrete")]       // keeps the first-order sample between its two calls
    [InlineData("EulerAncestralDiscrete")] // draws noise each step
    public void LiveTensorsStayFlatAcrossSteps(string schedulerName)
    {
        using var scope = torch.NewDisposeScope();
        using var scheduler = SchedulerRegistry.Create(schedulerName, new SchedulerConfig());
        scheduler.SetTimesteps(16);
        using var noise = new GeneratorNoiseSource(1);
        var latents = torch.randn(new long[] { 1, 4, 8, 8 }, generator: new torch.Generator(2)); // [1, 4, 8, 8]
        var liveAfterStep = new List<long>();
        var observer = new PipelineObserver { Progress = _ => liveAfterStep.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount) };

        var result = DenoisingLoop.Run(scheduler, scheduler.TimestepValues, latents, noise, observer, (sample, _, _) => (0.1 * sample.ScalarSafe()).Tensor);

        Assert.Equal(scheduler.TimestepValues.Count, liveAfterStep.Count);
        Assert.True(result.isfinite().all().item<bool>());
        Assert.False(latents.IsInvalid); // the caller's input is left alone
        // After the warm-up of a multistep scheduler's history the count no longer grows: the last twelve steps end with
        // no more live tensors than the first four of them (Heun alternates between two counts, its two half-steps).
        var settled = liveAfterStep.Skip(4).ToList();
        Assert.Equal(settled.Take(4).Max(), settled.Max());
        Assert.Equal(settled.Take(4).Min(), settled.Min());
    }
}
