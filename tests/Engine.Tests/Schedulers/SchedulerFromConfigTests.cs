using System.Text.Json;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>
/// tests/golden/scheduler_from_config.json: every scheduler named on top of a model's scheduler config is built as
/// diffusers' <c>XScheduler.from_config(pipe.scheduler.config)</c> builds it, for a single file (whose config diffusers
/// reads from the released hub file, most keys defaulted), a folder's released config and folders' modern configs.
/// </summary>
public class SchedulerFromConfigTests(ITestOutputHelper output)
{
    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(SchedulerConfig.QuoteNonFiniteLiterals(File.ReadAllText(Golden.Path("scheduler_from_config.json")))));

    private static JsonElement Sources => Fixture.Value.RootElement.GetProperty("sources");

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var source in Sources.EnumerateObject())
            foreach (var name in Fixture.Value.RootElement.GetProperty("schedulers").EnumerateArray())
                data.Add(source.Name, name.GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SchedulerNamedOnTopOfTheModelConfigIsBuiltAsDiffusersFromConfigBuildsIt(string source, string className)
    {
        var modelConfig = ModelSchedulerConfig(source);
        var runs = Sources.GetProperty(source).GetProperty("runs").EnumerateArray()
            .Where(r => r.GetProperty("class").GetString() == className).ToList();
        Assert.NotEmpty(runs);
        foreach (var run in runs)
        {
            using var scope = torch.NewDisposeScope();
            var n = run.GetProperty("num_inference_steps").GetInt32();
            using var scheduler = SchedulerRegistry.Create(className, modelConfig);
            scheduler.SetTimesteps(n);
            var what = $"{source} {className} n={n}";

            // The spacing the scheduler runs with (DPMSolverSinglestep has no such key: diffusers only carries the model's
            // value along as a hidden entry, and its schedule is always linspace).
            if (scheduler.Config.TimestepSpacing is { } spacing)
                Assert.Equal(run.GetProperty("timestep_spacing").GetString(), spacing);
            var expectedTimesteps = Values(run.GetProperty("timesteps"), run.GetProperty("timesteps_dtype").GetString()!);
            Assert.Equal(expectedTimesteps.dtype, scheduler.Timesteps.dtype);
            var timestepUlps = AssertTimestepsClose(expectedTimesteps, scheduler.Timesteps, $"{what} timesteps");
            var sigmaUlps = 0.0;
            // Sigmas and init_noise_sigma within the 4 float32 ulps SchedulerRolloutTests allows (libtorch 2.10 rounds
            // alphas_cumprod a few ulps off PyTorch 1.13).
            if (run.GetProperty("sigmas").ValueKind == JsonValueKind.Null) Assert.Null(scheduler.Sigmas);
            else
            {
                Assert.NotNull(scheduler.Sigmas);
                sigmaUlps = SchedulerGolden.AssertUlpClose(Values(run.GetProperty("sigmas"), "float32"), scheduler.Sigmas!, 4, $"{what} sigmas");
            }
            SchedulerGolden.AssertUlpClose(torch.tensor(run.GetProperty("init_noise_sigma").GetDouble()),
                torch.tensor(scheduler.InitNoiseSigma), 4, $"{what} init_noise_sigma");
            output.WriteLine($"{what}: spacing {scheduler.Config.TimestepSpacing ?? "(none)"}, timesteps within {timestepUlps:G3} ulps, sigmas within {sigmaUlps:G3} ulps");
        }
    }

    /// <summary>
    /// The scheduler config the engine holds for the source, made the engine's way: the single-file planner's config for
    /// the golden v checkpoint (with its ldm YAML) or with the epsilon override, else the folder file read by
    /// <see cref="SchedulerConfig.Load"/>.
    /// </summary>
    private static SchedulerConfig ModelSchedulerConfig(string source)
    {
        switch (source)
        {
            case "single_file_v":
            {
                var plan = SingleFilePlanner.Plan(SingleFileTestSupport.SingleFilePath("txt2img_v"),
                    new SingleFileOptions { ConfigPath = SingleFileTestSupport.LdmConfig("txt2img_v") });
                Assert.Equal("v_prediction", plan.PredictionType);
                return SchedulerConfig.Parse(plan.SchedulerConfigJson);
            }
            case "single_file_eps":
            {
                var plan = SingleFilePlanner.Plan(SingleFileTestSupport.SingleFilePath("txt2img_v"),
                    new SingleFileOptions { UseConfigBesideCheckpoint = false, PredictionType = "epsilon" });
                return SchedulerConfig.Parse(plan.SchedulerConfigJson);
            }
            default:
            {
                using var temp = new TempFolder("sd-scheduler-from-config-");
                var path = temp.Combine("scheduler_config.json");
                File.WriteAllText(path, Sources.GetProperty(source).GetProperty("scheduler_config_json").GetString());
                return SchedulerConfig.Load(path);
            }
        }
    }

    /// <summary>
    /// Integer timesteps exactly. Float ones within 8 float32 ulps, as SchedulerRolloutTests allows; below 1 within
    /// 1e-4: KDPM2 a's last midpoint sigma is sigma_min up to float32 cancellation in sigma_down = sqrt(next² - up²), and
    /// the few ulps it lands either side of sigma_min move its timestep between 0 and ~6e-5 (diffusers: 5.75e-5).
    /// Returns the largest difference in ulps of the values at or above 1.
    /// </summary>
    private static double AssertTimestepsClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        if (expected.dtype == ScalarType.Int64)
        {
            Assert.Equal(expected.data<long>().ToArray(), actual.data<long>().ToArray());
            return 0;
        }
        var e = expected.to(ScalarType.Float64).data<double>().ToArray();
        var a = actual.to(ScalarType.Float64).data<double>().ToArray();
        var worstUlps = 0.0;
        for (var i = 0; i < e.Length; i++)
        {
            var diff = Math.Abs(e[i] - a[i]);
            if (Math.Abs(e[i]) < 1)
            {
                Assert.True(diff <= 1e-4, $"{what}[{i}]: expected {e[i]:R}, got {a[i]:R} (allowed 1e-4 below 1)");
                continue;
            }
            var ulps = diff / Math.Pow(2, Math.Floor(Math.Log2(Math.Abs(e[i]))) - 23);
            Assert.True(ulps <= 8, $"{what}[{i}]: expected {e[i]:R}, got {a[i]:R}: {ulps:G3} float32 ulps (allowed 8)");
            worstUlps = Math.Max(worstUlps, ulps);
        }
        return worstUlps;
    }

    private static Tensor Values(JsonElement array, string dtype)
    {
        var values = array.EnumerateArray().Select(e => e.GetDouble()).ToArray();
        return dtype switch
        {
            "int64" => torch.tensor(values.Select(v => (long)v).ToArray(), ScalarType.Int64),
            "float32" => torch.tensor(values, ScalarType.Float64).to(ScalarType.Float32),
            "float64" => torch.tensor(values, ScalarType.Float64),
            _ => throw new InvalidDataException($"unexpected timesteps dtype {dtype}"),
        };
    }
}
