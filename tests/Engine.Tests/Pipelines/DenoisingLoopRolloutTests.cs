using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// The pipelines' own denoising loop (<see cref="DenoisingLoop"/>), driven by the golden rollouts' model formula instead
/// of a UNet, reproduces every latent diffusers stored for every scheduler run in schedulers.json: so every scheduler,
/// as New-SDImage drives it, steps exactly as in diffusers (stochastic ones with the stored noise).
/// </summary>
public class DenoisingLoopRolloutTests
{
    public static TheoryData<string> RunKeys() => SchedulerRolloutTests.RunKeys();

    [Theory]
    [MemberData(nameof(RunKeys))]
    public void PipelineLoopReproducesTheGoldenRollout(string key)
    {
        using var scope = torch.NewDisposeScope();
        var run = SchedulerGolden.Run(key);
        var tolerance = run.GetProperty("tolerance_max_abs").GetDouble();
        var draws = run.GetProperty("noise_draws").EnumerateArray()
            .Select(d => SchedulerGolden.Tensor(d.GetProperty("name").GetString()!)).ToList();
        var noise = new ReplayNoiseSource(draws);
        using var scheduler = SchedulerGolden.Build(run);
        scheduler.SetTimesteps(run.GetProperty("num_inference_steps").GetInt32());
        int compared = 0;
        var observer = new PipelineObserver
        {
            Inspect = (name, tensor) =>
            {
                if (!name.EndsWith("_latents", StringComparison.Ordinal)) return;
                var index = int.Parse(name.AsSpan(4, 2));
                Golden.AssertClose(SchedulerGolden.Tensor($"{key}/latents_{index:D3}"), tensor, tolerance, $"{key}/latents_{index:D3}");
                compared++;
            },
        };
        Tensor x = SchedulerGolden.Tensor("x_init").ScalarSafe() * scheduler.InitNoiseSigma;

        DenoisingLoop.Run(scheduler, scheduler.TimestepValues, x, noise, observer,
            (latents, t, _) => SchedulerGolden.ModelFormula(scheduler.ScaleModelInput(latents, t), t));

        Assert.Equal(run.GetProperty("num_step_calls").GetInt32(), compared);
        Assert.Equal(draws.Count, noise.Drawn);
    }
}
