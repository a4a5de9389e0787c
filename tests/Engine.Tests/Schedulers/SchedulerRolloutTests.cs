using System.Text.Json;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Every run of schedulers.json: schedule, then a rollout with the model formula, against diffusers.</summary>
public class SchedulerRolloutTests(ITestOutputHelper output)
{
    public static TheoryData<string> RunKeys()
    {
        var data = new TheoryData<string>();
        foreach (var run in SchedulerGolden.Runs) data.Add(run.GetProperty("key").GetString()!);
        return data;
    }

    public static TheoryData<string> StochasticRunKeys()
    {
        var data = new TheoryData<string>();
        foreach (var run in SchedulerGolden.Runs.Where(r => r.GetProperty("noise_draws").GetArrayLength() > 0))
            data.Add(run.GetProperty("key").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(RunKeys))]
    public void ScheduleMatchesDiffusers(string key)
    {
        using var scope = torch.NewDisposeScope();
        var run = SchedulerGolden.Run(key);
        using var scheduler = SchedulerGolden.Build(run);
        scheduler.SetTimesteps(run.GetProperty("num_inference_steps").GetInt32());

        Assert.Equal(run.GetProperty("order").GetInt32(), scheduler.Order);
        var expectedTimesteps = SchedulerGolden.Tensor($"{key}/timesteps");
        Assert.Equal(expectedTimesteps.dtype, scheduler.Timesteps.dtype);
        // Integer timesteps are exact; float ones within 8 float32 ulps (KDPM2's midpoint timesteps come from float32
        // log/lerp/exp of sigmas that already differ by an ulp or two; 8 ulps of t ~ 15 is 1e-5).
        var timestepUlps = SchedulerGolden.AssertUlpClose(expectedTimesteps, scheduler.Timesteps, expectedTimesteps.dtype == ScalarType.Int64 ? 0 : 8, $"{key}/timesteps");

        var sigmaUlps = 0.0;
        if (SchedulerGolden.HasTensor($"{key}/sigmas"))
        {
            Assert.NotNull(scheduler.Sigmas);
            sigmaUlps = SchedulerGolden.AssertUlpClose(SchedulerGolden.Tensor($"{key}/sigmas"), scheduler.Sigmas!, 4, $"{key}/sigmas");
        }
        SchedulerGolden.AssertUlpClose(torch.tensor(run.GetProperty("init_noise_sigma").GetDouble()), torch.tensor(scheduler.InitNoiseSigma), 4, "init_noise_sigma");
        output.WriteLine($"{key}: timesteps within {timestepUlps:G3} ulps, sigmas within {sigmaUlps:G3} ulps");
    }

    [Theory]
    [MemberData(nameof(RunKeys))]
    public void RolloutMatchesDiffusers(string key)
    {
        var run = SchedulerGolden.Run(key);
        var draws = run.GetProperty("noise_draws").EnumerateArray()
            .Select(d => SchedulerGolden.Tensor(d.GetProperty("name").GetString()!)).ToList();
        var noise = new ReplayNoiseSource(draws);
        var worst = Rollout(run, noise);
        Assert.Equal(draws.Count, noise.Drawn);
        output.WriteLine($"{key}: max |latents - diffusers| = {worst:G3} (tolerance {run.GetProperty("tolerance_max_abs").GetDouble():G3})");
    }

    /// <summary>A CPU torch.Generator seeded like the reference (manual_seed(1)) reproduces every stored draw in order.</summary>
    [Theory]
    [MemberData(nameof(StochasticRunKeys))]
    public void GeneratorNoiseSourceReproducesDiffusersDraws(string key)
    {
        var run = SchedulerGolden.Run(key);
        var draws = run.GetProperty("noise_draws").EnumerateArray()
            .Select(d => SchedulerGolden.Tensor(d.GetProperty("name").GetString()!)).ToList();
        using var generator = new GeneratorNoiseSource(1);
        var checking = new CheckingNoiseSource(generator, draws);
        var worst = Rollout(run, checking);
        Assert.Equal(draws.Count, checking.Drawn);
        output.WriteLine($"{key}: {checking.Drawn} draws identical; max latents diff {worst:G3}");
    }

    private static double Rollout(JsonElement run, INoiseSource noise)
    {
        using var scope = torch.NewDisposeScope();
        var key = run.GetProperty("key").GetString()!;
        var tolerance = run.GetProperty("tolerance_max_abs").GetDouble();
        using var scheduler = SchedulerGolden.Build(run);
        scheduler.SetTimesteps(run.GetProperty("num_inference_steps").GetInt32());

        Tensor x = SchedulerGolden.Tensor("x_init").ScalarSafe() * scheduler.InitNoiseSigma;
        var worst = 0.0;
        var calls = 0;
        foreach (var t in scheduler.TimestepValues)
        {
            using var stepScope = torch.NewDisposeScope();
            var xIn = scheduler.ScaleModelInput(x, t);
            var modelOutput = SchedulerGolden.ModelFormula(xIn, t);
            x = scheduler.Step(modelOutput, t, x, noise).MoveToOuterDisposeScope();
            var diff = Golden.AssertClose(SchedulerGolden.Tensor($"{key}/latents_{calls:D3}"), x, tolerance, $"{key}/latents_{calls:D3}");
            worst = Math.Max(worst, diff);
            calls++;
        }
        Assert.Equal(run.GetProperty("num_step_calls").GetInt32(), calls);
        return worst;
    }
}
