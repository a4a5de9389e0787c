using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Name resolution, metadata and diffusers from_config semantics.</summary>
public class SchedulerRegistryTests
{
    private static readonly string[] ExpectedClasses =
    [
        "DDIMScheduler", "DDPMScheduler", "DEISMultistepScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
        "EulerAncestralDiscreteScheduler", "EulerDiscreteScheduler", "HeunDiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
        "KDPM2DiscreteScheduler", "LMSDiscreteScheduler", "PNDMScheduler", "UniPCMultistepScheduler",
    ];

    [Fact]
    public void DiscoversEverySchedulerClass() =>
        Assert.Equal(ExpectedClasses, SchedulerRegistry.Schedulers.Select(s => s.ClassName).ToArray());

    [Theory]
    [InlineData("DDIMScheduler", "DDIMScheduler")]
    [InlineData("ddim", "DDIMScheduler")]
    [InlineData("eulerdiscrete", "EulerDiscreteScheduler")]
    [InlineData("EULERANCESTRALDISCRETESCHEDULER", "EulerAncestralDiscreteScheduler")]
    [InlineData("Euler a", "EulerAncestralDiscreteScheduler")]
    [InlineData("Euler", "EulerDiscreteScheduler")]
    [InlineData("DPM++ 2M", "DPMSolverMultistepScheduler")]
    [InlineData("dpm++ 2m karras", "DPMSolverMultistepScheduler")]
    [InlineData("DPM++ 2M SDE", "DPMSolverMultistepScheduler")]
    [InlineData("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler")]
    [InlineData("DPM++ SDE Karras", "DPMSolverMultistepScheduler")]
    [InlineData("DPM2", "KDPM2DiscreteScheduler")]
    [InlineData("DPM2 Karras", "KDPM2DiscreteScheduler")]
    [InlineData("DPM2 a", "KDPM2AncestralDiscreteScheduler")]
    [InlineData("Heun", "HeunDiscreteScheduler")]
    [InlineData("LMS", "LMSDiscreteScheduler")]
    [InlineData("LMS Karras", "LMSDiscreteScheduler")]
    [InlineData("PLMS", "PNDMScheduler")]
    [InlineData("PNDM", "PNDMScheduler")]
    [InlineData("UniPC", "UniPCMultistepScheduler")]
    [InlineData("DEIS", "DEISMultistepScheduler")]
    [InlineData("DDPM", "DDPMScheduler")]
    public void ResolvesClassAndA1111Names(string name, string expectedClass)
    {
        Assert.Equal(expectedClass, SchedulerRegistry.Resolve(name).ClassName);
        using var scheduler = SchedulerRegistry.Create(name);
        Assert.Equal(expectedClass, scheduler.Name);
    }

    [Fact]
    public void UnknownNameListsTheValidOnes()
    {
        var error = Assert.Throws<UnknownSchedulerException>(() => SchedulerRegistry.Resolve("Euler b"));
        Assert.Contains("'Euler b'", error.Message);
        Assert.Contains("Euler a", error.Message);
        Assert.Contains("DPMSolverMultistepScheduler", error.Message);
    }

    [Fact]
    public void AllNamesAreUniqueAndResolvable()
    {
        var names = SchedulerRegistry.AllNames;
        Assert.Equal(names.Count, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());
        foreach (var name in names) Assert.True(SchedulerRegistry.TryResolve(name, out _), name);
        Assert.Contains("DPM++ 2M Karras", names);
        Assert.Contains("EulerDiscrete", names);
    }

    [Fact]
    public void AliasesApplyTheirConfigAndOverridesWin()
    {
        var sd21 = SchedulerConfig.Load(Golden.Path("txt2img_v", "model", "scheduler"));
        using var karras = SchedulerRegistry.Create("DPM++ 2M SDE Karras", sd21);
        Assert.Equal(true, karras.Config.UseKarrasSigmas);
        Assert.Equal("sde-dpmsolver++", karras.Config.AlgorithmType);
        Assert.True(karras.IsStochastic);

        using var ddim = SchedulerRegistry.Create("DDIM", sd21, new SchedulerConfig { Eta = 0.5 });
        Assert.True(ddim.IsStochastic);
        Assert.Equal(0.5, ((DDIMScheduler)ddim).Eta);
    }

    [Fact]
    public void MetadataDescribesStochasticityOrderAndCalls()
    {
        var byName = SchedulerRegistry.Presets.ToDictionary(p => p.Name);
        Assert.False(byName["DDIM"].IsStochastic);
        Assert.True(byName["Euler a"].IsStochastic);
        Assert.True(byName["DPM++ 2M SDE"].IsStochastic);
        Assert.False(byName["DPM++ 2M"].IsStochastic);
        Assert.Equal(2, byName["Heun"].ModelCallsPerStep);
        Assert.Equal(2, byName["DPM2 a"].Order);
        var euler = SchedulerRegistry.Schedulers.Single(s => s.ClassName == "EulerDiscreteScheduler");
        Assert.Equal("linspace", euler.Defaults["timestep_spacing"]);
        Assert.Contains("Euler", euler.Aliases);
    }

    /// <summary>
    /// The SD 2.1 DDIM scheduler_config.json builds Euler as diffusers' from_config does: DDIM-only keys ignored, keys the
    /// file lacks take Euler's defaults, keys it has (a config saved by diffusers 0.29 has them all) are kept.
    /// </summary>
    [Fact]
    public void DdimConfigBuildsEulerWithEulerDefaults()
    {
        var sd21 = SchedulerConfig.Parse(SchedulerGolden.Root.GetProperty("base_config").GetRawText());
        Assert.Equal("DDIMScheduler", sd21.ClassName);
        using var euler = SchedulerRegistry.Create("EulerDiscreteScheduler", sd21);
        Assert.Equal("scaled_linear", euler.Config.BetaSchedule);
        Assert.Equal("v_prediction", euler.Config.PredictionType);
        Assert.Null(euler.Config.SetAlphaToOne); // a DDIM key: ignored
        Assert.Equal("linspace", euler.Config.TimestepSpacing); // not in the file: Euler's default, not DDIM's
        using var ddim = SchedulerRegistry.FromConfig(sd21);
        Assert.IsType<DDIMScheduler>(ddim);
        Assert.Equal("leading", ddim.Config.TimestepSpacing);

        var saved = SchedulerConfig.Load(Golden.Path("txt2img_v", "model", "scheduler"));
        using var eulerFromSaved = SchedulerRegistry.Create("Euler", saved);
        Assert.Equal("leading", eulerFromSaved.Config.TimestepSpacing); // written in the file, so kept
    }

    [Fact]
    public void ParsesPythonNonFiniteLiteralsAndDropsDefaultedKeys()
    {
        var config = SchedulerConfig.Parse("""
            {"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "beta_end": 0.012,
             "timestep_spacing": "leading", "name": "a \"-Infinity\" string", "_use_default_values": ["timestep_spacing"]}
            """);
        Assert.Equal(double.NegativeInfinity, config.LambdaMinClipped);
        Assert.Equal(0.012, config.BetaEnd);
        Assert.Null(config.TimestepSpacing);
    }

    [Fact]
    public void BadValuesNameTheKey()
    {
        var error = Assert.Throws<ArgumentException>(() => SchedulerRegistry.Create("DDIM", new SchedulerConfig { PredictionType = "noise" }));
        Assert.Contains("prediction_type 'noise'", error.Message);
        Assert.Throws<FormatException>(() => SchedulerConfig.Parse("{ not json"));
        Assert.Throws<FileNotFoundException>(() => SchedulerConfig.Load("/nonexistent/scheduler_config.json"));
    }

    [Fact]
    public void ApplyStrengthSlicesLikeDiffusersImg2Img()
    {
        using var heun = SchedulerRegistry.Create("Heun");
        heun.SetTimesteps(10);
        var schedule = heun.ApplyStrength(0.5);
        Assert.Equal(10, schedule.BeginIndex); // t_start 5 * order 2
        Assert.Equal(5, schedule.NumInferenceSteps);
        Assert.Equal(heun.TimestepValues.Count - 10, schedule.Timesteps.shape[0]);
        Assert.Equal(10, heun.BeginIndex);
    }
}
