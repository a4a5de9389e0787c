using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>
/// The scheduler part of each golden pipeline case: its model/scheduler config, the (strength-sliced) timesteps,
/// add_noise, the UNet input scaling, and every scheduler.step from the stored guided noise prediction.
/// </summary>
public class SchedulerPipelineCaseTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases() => GoldenCases.PipelineCases;

    [Theory]
    [MemberData(nameof(Cases))]
    public void SchedulerStepsMatchThePipeline(string caseName)
    {
        using var scope = torch.NewDisposeScope();
        using var golden = Golden.Case(caseName);
        var call = golden.Json.RootElement.GetProperty("call");
        var overrides = call.TryGetProperty("eta", out var eta) ? new SchedulerConfig { Eta = eta.GetDouble() } : null;
        using var scheduler = SchedulerRegistry.FromConfig(SchedulerConfig.Load(System.IO.Path.Combine(golden.ModelFolder, "scheduler")), overrides);

        scheduler.SetTimesteps(call.GetProperty("num_inference_steps").GetInt32());
        SchedulerGolden.AssertUlpClose(golden.Tensor("scheduler_timesteps_full").to(ScalarType.Float32), scheduler.Timesteps.to(ScalarType.Float32), 8, "scheduler_timesteps_full");
        if (golden.Has("scheduler_sigmas_full") && scheduler.Sigmas is not null)
            SchedulerGolden.AssertUlpClose(golden.Tensor("scheduler_sigmas_full"), scheduler.Sigmas, 4, "scheduler_sigmas_full");

        var timesteps = call.TryGetProperty("strength", out var strength)
            ? scheduler.ApplyStrength(strength.GetDouble()).Timesteps
            : scheduler.Timesteps;
        SchedulerGolden.AssertUlpClose(golden.Tensor("timesteps").to(ScalarType.Float32), timesteps.to(ScalarType.Float32), 8, "timesteps");
        SchedulerGolden.AssertUlpClose(golden.Tensor("init_noise_sigma"), torch.tensor((float)scheduler.InitNoiseSigma), 4, "init_noise_sigma");

        if (golden.Has("add_noise_output"))
        {
            var noised = scheduler.AddNoise(golden.Tensor("add_noise_original"), golden.Tensor("add_noise_noise"), golden.Tensor("add_noise_timestep").reshape(1));
            golden.AssertClose("add_noise_output", noised);
        }

        var schedulerDraws = golden.Json.RootElement.GetProperty("noise_draws").EnumerateArray()
            .Where(d => d.GetProperty("drawn_by").GetString()!.StartsWith("scheduling_", StringComparison.Ordinal))
            .Select(d => golden.Tensor(d.GetProperty("name").GetString()!)).ToList();
        var noise = new ReplayNoiseSource(schedulerDraws);

        var worst = 0.0;
        var values = timesteps.to(ScalarType.Float64).data<double>().ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            var prefix = $"step{i:D2}_";
            var t = golden.Tensor(prefix + "timestep").ToDouble();
            Assert.Equal((float)values[i], (float)t, 3); // timestep given to UNet and scheduler (float32 ulps aside)
            t = values[i];
            var sampleIn = golden.Tensor(prefix + "sample_in");
            var unetInput = golden.Tensor(prefix + "unet_input");
            var scaled = scheduler.ScaleModelInput(torch.cat([sampleIn, sampleIn]), t);
            Golden.AssertClose(unetInput[.., ..4], scaled, golden.Tolerance(prefix + "unet_input"), caseName + "/" + prefix + "unet_input[:, :4]");

            var latents = scheduler.Step(golden.Tensor(prefix + "noise_pred"), t, sampleIn, noise);
            worst = Math.Max(worst, golden.AssertClose(prefix + "latents", latents));
        }
        Assert.Equal(schedulerDraws.Count, noise.Drawn);
        output.WriteLine($"{caseName}: {values.Length} steps, max latents diff {worst:G3}");
    }
}
