using System.Text.Json;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Training schedules and add_noise (img2img start, x4 upscaler low-res noise) against diffusers.</summary>
public class SchedulerNoiseTests(ITestOutputHelper output)
{
    public static TheoryData<string> AddNoiseKeys()
    {
        var data = new TheoryData<string>();
        foreach (var entry in SchedulerGolden.Root.GetProperty("add_noise").EnumerateArray()) data.Add(entry.GetProperty("key").GetString()!);
        return data;
    }

    public static TheoryData<int> LowresLevels()
    {
        var data = new TheoryData<int>();
        foreach (var entry in SchedulerGolden.Root.GetProperty("lowres_add_noise").EnumerateArray()) data.Add(entry.GetProperty("noise_level").GetInt32());
        return data;
    }

    /// <summary>The floor the README gives for float32 comparisons: 1e-5 x max(1, |expected|max).</summary>
    private static double FloorTolerance(Tensor expected) => 1e-5 * Math.Max(1.0, expected.abs().max().ToDouble());

    [Fact]
    public void Sd21AlphasCumprodMatchesWithinFourUlps()
    {
        var config = SchedulerConfig.Parse(SchedulerGolden.Root.GetProperty("base_config").GetRawText());
        using var scheduler = SchedulerRegistry.FromConfig(config);
        Assert.IsType<DDIMScheduler>(scheduler);
        var ulps = SchedulerGolden.AssertUlpClose(SchedulerGolden.Tensor("alphas_cumprod/sd21"), scheduler.AlphasCumprod, 4, "alphas_cumprod/sd21");
        output.WriteLine($"alphas_cumprod/sd21: max {ulps:G3} ulps");
    }

    [Fact]
    public void X4LowresAlphasCumprodMatchesWithinFourUlps()
    {
        var config = SchedulerConfig.Parse(SchedulerGolden.Root.GetProperty("lowres_scheduler_config").GetRawText());
        using var scheduler = SchedulerRegistry.FromConfig(config);
        Assert.IsType<DDPMScheduler>(scheduler);
        var ulps = SchedulerGolden.AssertUlpClose(SchedulerGolden.Tensor("alphas_cumprod/x4_lowres"), scheduler.AlphasCumprod, 4, "alphas_cumprod/x4_lowres");
        output.WriteLine($"alphas_cumprod/x4_lowres: max {ulps:G3} ulps");
    }

    /// <summary>img2img start: 20 steps, strength slicing, set_begin_index, add_noise at the first remaining timestep.</summary>
    [Theory]
    [MemberData(nameof(AddNoiseKeys))]
    public void AddNoiseAtImg2ImgStartMatchesDiffusers(string key)
    {
        using var scope = torch.NewDisposeScope();
        var entry = SchedulerGolden.Root.GetProperty("add_noise").EnumerateArray().Single(e => e.GetProperty("key").GetString() == key);
        var variant = key.Split('/')[1];
        var prediction = entry.GetProperty("prediction_type").GetString();
        var run = SchedulerGolden.Runs.First(r => r.GetProperty("variant").GetString() == variant && r.GetProperty("prediction_type").GetString() == prediction);
        using var scheduler = SchedulerGolden.Build(run);
        scheduler.SetTimesteps(entry.GetProperty("num_inference_steps").GetInt32());

        var schedule = scheduler.ApplyStrength(entry.GetProperty("strength").GetDouble());
        var tStart = entry.GetProperty("t_start").GetInt32();
        Assert.Equal(tStart * scheduler.Order, schedule.BeginIndex);
        // Same ulp allowances as the schedule test: float timesteps 8 ulps, sigmas 4 ulps, integers exact.
        var floatUlps = schedule.Timesteps.dtype == ScalarType.Int64 ? 0 : 8;
        var remaining = torch.tensor(SchedulerGolden.Doubles(entry.GetProperty("remaining_timesteps")));
        SchedulerGolden.AssertUlpClose(remaining.to(ScalarType.Float32), schedule.Timesteps.to(ScalarType.Float32), floatUlps, $"{key} remaining timesteps");
        SchedulerGolden.AssertUlpClose(torch.tensor((float)entry.GetProperty("latent_timestep").GetDouble()), schedule.Timesteps[0].to(ScalarType.Float32), floatUlps, $"{key} latent timestep");
        SchedulerGolden.AssertUlpClose(torch.tensor(entry.GetProperty("init_noise_sigma").GetDouble()), torch.tensor(scheduler.InitNoiseSigma), 4, $"{key} init_noise_sigma");

        var expected = SchedulerGolden.Tensor(key);
        var actual = scheduler.AddNoise(SchedulerGolden.Tensor("add_noise/x0"), SchedulerGolden.Tensor("add_noise/noise"), schedule.Timesteps[..1]);
        var diff = Golden.AssertClose(expected, actual, FloorTolerance(expected), key);
        output.WriteLine($"{key}: max abs diff {diff:G3}");
    }

    /// <summary>x4 upscaler: DDPM low-res scheduler add_noise of the low-res image at noise_level.</summary>
    [Theory]
    [MemberData(nameof(LowresLevels))]
    public void LowresAddNoiseMatchesDiffusers(int level)
    {
        using var scope = torch.NewDisposeScope();
        var config = SchedulerConfig.Parse(SchedulerGolden.Root.GetProperty("lowres_scheduler_config").GetRawText());
        using var scheduler = SchedulerRegistry.FromConfig(config);
        var entry = SchedulerGolden.Root.GetProperty("lowres_add_noise").EnumerateArray().Single(e => e.GetProperty("noise_level").GetInt32() == level);
        SchedulerGolden.AssertUlpClose(torch.tensor((float)entry.GetProperty("alphas_cumprod").GetDouble()), scheduler.AlphasCumprod[level], 4, $"alphas_cumprod[{level}]");

        var expected = SchedulerGolden.Tensor($"lowres/noised_level{level}");
        var actual = scheduler.AddNoise(SchedulerGolden.Tensor("lowres/image"), SchedulerGolden.Tensor("lowres/noise"), torch.tensor(new long[] { level }));
        var diff = Golden.AssertClose(expected, actual, FloorTolerance(expected), $"lowres level {level}");
        output.WriteLine($"lowres level {level}: max abs diff {diff:G3}");
    }
}
