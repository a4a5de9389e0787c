using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

/// <summary>
/// Single-file checkpoints (safetensors and torch .ckpt) loaded whole through <see cref="SingleFileModelLoader.Load"/>
/// and <see cref="ModelStore"/>, against the golden diffusers folders holding the same weights.
/// </summary>
public class SingleFileModelTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => GoldenCases.PipelineCases;

    [Theory]
    [MemberData(nameof(Cases))]
    public void SingleFileWithItsLdmConfigGivesTheFolderImage(string caseName)
    {
        using var golden = Golden.Case(caseName);
        using var temp = new TempFolder();
        var log = new List<string>();
        using var single = SingleFileModelLoader.Load(SingleFileTestSupport.SingleFilePath(caseName), ComputeTarget.Cpu32,
            new SingleFileOptions { ConfigPath = SingleFileTestSupport.LdmConfig(caseName) }, log.Add);

        // The folder, with the scheduler config(s) the single file plans, so that both run the same schedule.
        var folder = temp.Combine("model");
        CopyDirectory(golden.ModelFolder, folder);
        var plan = SingleFilePlanner.Plan(SingleFileTestSupport.SingleFilePath(caseName), new SingleFileOptions { ConfigPath = SingleFileTestSupport.LdmConfig(caseName) });
        File.WriteAllText(Path.Combine(folder, "scheduler", "scheduler_config.json"), plan.SchedulerConfigJson);
        if (plan.LowResSchedulerConfigJson is { } lowRes)
            File.WriteAllText(Path.Combine(folder, "low_res_scheduler", "scheduler_config.json"), lowRes);
        using var diffusers = DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32);

        Assert.Equal(diffusers.Kind, single.Kind);
        Assert.Equal(diffusers.PredictionType, single.PredictionType);
        Assert.Equal(golden.Json.RootElement.GetProperty("prediction_type").GetString(), single.PredictionType);
        Assert.Equal(diffusers.MemoryBytes, single.MemoryBytes);
        Assert.Contains(log, l => l.StartsWith("Config: ", StringComparison.Ordinal));
        Assert.Contains(log, l => l.StartsWith("Prediction type ", StringComparison.Ordinal));
        Assert.Contains(log, l => l.StartsWith("Loaded UNet", StringComparison.Ordinal));

        var scheduler = SchedulerClass(golden);
        using var fromFolder = Run(diffusers, golden, scheduler);
        using var fromSingle = Run(single, golden, scheduler);
        Assert.Equal(fromFolder.Timesteps, fromSingle.Timesteps);
        var latentDiff = Golden.AssertClose(fromFolder.FinalLatents, fromSingle.FinalLatents, golden.Tolerance("final_latents"), $"{caseName} final_latents");
        int levels = MaxLevelDifference(fromFolder.Image, fromSingle.Image);
        output.WriteLine($"{caseName}: single file vs folder ({scheduler}): final_latents max abs diff {latentDiff:G3}, image max {levels} level(s)");
        Assert.True(levels <= 1, $"{caseName}: the single file's image differs from the folder's by {levels} levels");

        // The planned config is the released one diffusers reads for a single file, so the case's scheduler built
        // on it (from_config, its own defaults where the file says nothing) is diffusers' call itself: the
        // timesteps and the image of the reference.
        Assert.Equal(golden.Tensor("timesteps").to(ScalarType.Float64).data<double>().ToArray(), fromSingle.Timesteps);
        var expected = SDImage.Load(Path.Combine(golden.Folder, "expected.png"));
        int vsExpected = MaxLevelDifference(expected, fromSingle.Image);
        output.WriteLine($"{caseName}: single file vs diffusers' expected.png: {vsExpected} level(s)");
        Assert.True(vsExpected <= 2, $"{caseName}: the single file's image differs from expected.png by {vsExpected} levels");
    }

    [Fact]
    public void DetectionAloneOnATinyCheckpointIsAClearErrorThatAsksForTheConfig()
    {
        // The tiny fixtures have 16 channels per head. Detection knows only the released layout (64 per head), which
        // does not divide the widths 32/64 or the text width 8, so it cannot settle the heads: loading refuses to guess.
        const string caseName = "txt2img_v";
        using var temp = new TempFolder();
        var checkpoint = temp.Combine("tiny-v.safetensors");
        File.Copy(SingleFileTestSupport.SingleFilePath(caseName), checkpoint);

        var plan = SingleFilePlanner.Plan(checkpoint);
        Assert.Null(plan.ConfigPath);
        Assert.Equal(2, plan.Unresolved.Count);
        var log = new List<string>();
        var error = Assert.Throws<SingleFileCheckpointException>(() =>
            SingleFileModelLoader.Load(checkpoint, ComputeTarget.Cpu32, log: log.Add));
        output.WriteLine(error.Message);
        Assert.Contains(checkpoint, error.Message);
        Assert.Contains("UNet width 32", error.Message);
        Assert.Contains("text encoder heads of width 8", error.Message);
        Assert.Contains("the Config option", error.Message);
        Assert.Contains("tiny-v.yaml", error.Message);
        Assert.Contains(log, l => l.StartsWith("Assumed", StringComparison.Ordinal)); // the notes came out before the refusal

        // Through the model store the same error, and nothing stays in the cache.
        Assert.Throws<SingleFileCheckpointException>(() => ModelStore.Acquire(checkpoint, ComputeTarget.Cpu32, null, default).Dispose());
        Assert.DoesNotContain(EngineCache.Shared.List(), e => e.Model == checkpoint);

        // The YAML beside the checkpoint, under the checkpoint's name, settles it.
        File.Copy(SingleFileTestSupport.LdmConfig(caseName), temp.Combine("tiny-v.yaml"));
        using var model = SingleFileModelLoader.Load(checkpoint, ComputeTarget.Cpu32);
        Assert.Equal(new[] { 2, 2, 2, 2 }, model.Unet.Config.AttentionHeadDim);
    }

    [Fact]
    public void CkptCheckpointLoadsThroughTheModelStoreAndGivesTheSameImage()
    {
        const string caseName = "inpaint";
        using var golden = Golden.Case(caseName);
        using var temp = new TempFolder();
        var ckpt = temp.Combine("tiny-inpainting.ckpt");
        WriteCkpt(SingleFileTestSupport.SingleFilePath(caseName), ckpt, globalStep: 200000);

        var options = new ModelLoadOptions { ConfigPath = SingleFileTestSupport.LdmConfig(caseName) };
        var log = new List<string>();
        using var safetensors = SingleFileModelLoader.Load(SingleFileTestSupport.SingleFilePath(caseName), ComputeTarget.Cpu32,
            new SingleFileOptions { ConfigPath = options.ConfigPath });
        RunOutput fromCkpt;
        using (var lease = ModelStore.Acquire(ckpt, ComputeTarget.Cpu32, options, log.Add, default))
        {
            Assert.Equal(ckpt, lease.Engine.Source);
            Assert.Equal(ModelKind.Inpaint, lease.Engine.Kind);
            fromCkpt = Run(lease.Engine, golden, null);
        }
        using (fromCkpt)
        {
            // A second acquire with the same options is the cached engine.
            using (var again = ModelStore.Acquire(ckpt, ComputeTarget.Cpu32, options, log.Add, default)) { }
            Assert.Contains(log, l => l.StartsWith("Using the cached inpainting model", StringComparison.Ordinal));
            Assert.Single(EngineCache.Shared.List(), e => e.Model == ckpt);
            EngineCache.Shared.Clear(e => e.Model == ckpt);

            using var fromSafetensors = Run(safetensors, golden, null);
            Assert.Equal(fromSafetensors.Image.Pixels, fromCkpt.Image.Pixels);
            Assert.True(ModelSourceTestSupport.SameValues(fromSafetensors.FinalLatents, fromCkpt.FinalLatents), "final latents differ between .ckpt and .safetensors");
            // The planned DDIM is the case's scheduler: this is also diffusers' image.
            int levels = MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), fromCkpt.Image);
            output.WriteLine($".ckpt vs expected.png: {levels} level(s); .ckpt vs .safetensors: bitwise equal");
            Assert.True(levels <= 2);
        }
    }

    [Fact]
    public void GlobalStepOfACkptDecidesThePredictionTypeAsDiffusersDoes()
    {
        using var temp = new TempFolder();
        var source = SingleFileTestSupport.SingleFilePath("txt2img_eps_dpmpp");
        var baseCkpt = temp.Combine("base.ckpt");
        var vCkpt = temp.Combine("v.ckpt");
        WriteCkpt(source, baseCkpt, globalStep: SingleFilePlanner.Sd2BaseGlobalStep);
        WriteCkpt(source, vCkpt, globalStep: 110000);

        var basePlan = SingleFilePlanner.Plan(baseCkpt);
        Assert.Equal("epsilon", basePlan.PredictionType);
        Assert.Equal(512, basePlan.DefaultSize);
        Assert.Contains(basePlan.Assumptions, n => n.Contains("global_step is 875000", StringComparison.Ordinal));
        var vPlan = SingleFilePlanner.Plan(vCkpt);
        Assert.Equal("v_prediction", vPlan.PredictionType);
        Assert.Equal(768, vPlan.DefaultSize);
        Assert.Contains(vPlan.Assumptions, n => n.Contains("with global_step 110000", StringComparison.Ordinal));
        // An explicit prediction type wins over the step.
        Assert.Equal("v_prediction", SingleFilePlanner.Plan(baseCkpt, new SingleFileOptions { PredictionType = "v" }).PredictionType);
    }

    [Fact]
    public void Fp16CheckpointLoadsInTheRequestedPrecision()
    {
        const string caseName = "txt2img_eps_dpmpp";
        using var temp = new TempFolder();
        var ckpt = temp.Combine("half.ckpt");
        WriteCkpt(SingleFileTestSupport.SingleFilePath(caseName), ckpt, dtype: ScalarType.Float16);
        using var model = SingleFileModelLoader.Load(ckpt, ComputeTarget.Cpu32,
            new SingleFileOptions { ConfigPath = SingleFileTestSupport.LdmConfig(caseName) });

        using var scope = NewDisposeScope();
        using var reference = PSStableDiffusion.Engine.IO.SafeTensorsFile.Open(SingleFileTestSupport.ComponentFile(caseName, SingleFileComponent.UNet));
        var unet = model.Unet.state_dict();
        foreach (var key in new[] { "conv_in.weight", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", "conv_out.bias" })
        {
            Assert.Equal(ScalarType.Float32, unet[key].dtype);
            var expected = reference.Read(key).to(ScalarType.Float16).to(ScalarType.Float32);
            Assert.True(ModelSourceTestSupport.SameValues(expected, unet[key]), $"{key}: not the fp16 value widened to float32");
        }
        Assert.Equal(ScalarType.Float32, model.Vae.state_dict()["decoder.conv_out.weight"].dtype);
        Assert.Equal(ScalarType.Float32, model.TextEncoder.parameters().First().dtype);
        Assert.All(model.Unet.parameters(), p => Assert.False(p.requires_grad));
    }
}
