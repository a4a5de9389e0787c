using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.SingleFile.SingleFileTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.SingleFile;

/// <summary>Plans of the golden single files: with their ldm YAML they reproduce the diffusers folders' configs.</summary>
public class SingleFilePlanGoldenTests
{
    private readonly ITestOutputHelper _output;

    public SingleFilePlanGoldenTests(ITestOutputHelper output) => _output = output;

    public static IEnumerable<object[]> Cases => PipelineCases.Select(c => new object[] { c });

    private static ModelKind ExpectedVariant(string caseName) => caseName switch
    {
        "inpaint" => ModelKind.Inpaint,
        "depth2img" => ModelKind.Depth,
        "upscale_x4" => ModelKind.Upscale,
        _ => ModelKind.TextToImage,
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void WithLdmConfigThePlanEqualsTheDiffusersConfigs(string caseName)
    {
        var plan = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { ConfigPath = LdmConfig(caseName) });
        foreach (var note in plan.Notes) _output.WriteLine(note);
        Assert.Equal(ExpectedVariant(caseName), plan.Kind);
        Assert.Empty(plan.Assumptions);

        AssertSameConfig(UNet2DConditionConfig.FromFile(ComponentConfig(caseName, "unet")), plan.UNetConfig(), $"{caseName} unet");
        AssertSameConfig(AutoencoderKLConfig.FromFile(ComponentConfig(caseName, "vae")), plan.VaeConfig(), $"{caseName} vae");
        AssertSameConfig(CLIPTextConfig.Load(ComponentConfig(caseName, "text_encoder")), plan.TextEncoderConfig(), $"{caseName} text_encoder");

        using var golden = Golden.Case(caseName);
        Assert.Equal(golden.Json.RootElement.GetProperty("prediction_type").GetString(), plan.PredictionType);
        Assert.Equal(8 * plan.UNetConfig().SampleSize / (caseName == "upscale_x4" ? 2 : 1), plan.DefaultSize);

        using var expected = Golden.ParseJson(File.ReadAllText(ComponentConfig(caseName, "scheduler")));
        using var actual = plan.SchedulerConfig();
        var reference = expected.RootElement;
        // The plan states the keys of the released file diffusers reads for a single file; every key both state agrees
        // (timestep_spacing aside, which is each scheduler's own default)...
        var shared = reference.EnumerateObject().Select(p => p.Name)
            .Where(n => actual.RootElement.TryGetProperty(n, out _) && n is not ("_class_name" or "_diffusers_version" or "timestep_spacing"));
        AssertSameJson(reference, actual.RootElement, $"{caseName} scheduler", shared);
        if (reference.GetProperty("_class_name").GetString() == "DDIMScheduler")
        {
            // ...and the keys it leaves out are DDIM's defaults: it builds the DDIM the case ran.
            using var fromPlan = SchedulerRegistry.FromConfig(SchedulerConfig.Parse(plan.SchedulerConfigJson));
            using var fromFolder = SchedulerRegistry.FromConfig(SchedulerConfig.Parse(reference.GetRawText()));
            Assert.Equal(fromFolder.Config.ToDictionary(), fromPlan.Config.ToDictionary());
        }

        if (caseName == "upscale_x4")
        {
            using var lowResExpected = Golden.ParseJson(File.ReadAllText(ComponentConfig(caseName, "low_res_scheduler")));
            using var lowRes = JsonDocument.Parse(plan.LowResSchedulerConfigJson!);
            AssertSameJson(lowResExpected.RootElement, lowRes.RootElement, "low_res_scheduler",
                lowResExpected.RootElement.EnumerateObject().Select(p => p.Name).Where(n => n != "_diffusers_version"));
            using var index = JsonDocument.Parse(File.ReadAllText(Golden.Path(caseName, "model", "model_index.json")));
            Assert.Equal(index.RootElement.GetProperty("max_noise_level").GetInt32(), plan.MaxNoiseLevel);
        }
        else Assert.Null(plan.LowResSchedulerConfigJson);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DetectionAloneFindsTheVariantAndListsItsAssumptions(string caseName)
    {
        // The tiny fixtures use 16 channels per head, which weights cannot show: detection must say what it assumed.
        var plan = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { UseConfigBesideCheckpoint = false });
        foreach (var note in plan.Notes) _output.WriteLine(note);
        Assert.Null(plan.ConfigPath);
        Assert.Equal(ExpectedVariant(caseName), plan.Kind);
        var assumptions = plan.Assumptions.ToList();
        Assert.Contains(assumptions, a => a.Contains("attention head", StringComparison.Ordinal));
        Assert.Contains(assumptions, a => a.Contains("text encoder head", StringComparison.Ordinal));
        Assert.Contains(assumptions, a => a.Contains("prediction type", StringComparison.Ordinal));
        Assert.Contains(assumptions, a => a.Contains("scaling_factor", StringComparison.Ordinal));

        // Everything the weights do show matches the diffusers config.
        var expected = UNet2DConditionConfig.FromFile(ComponentConfig(caseName, "unet"));
        AssertSameConfig(expected, plan.UNetConfig(), $"{caseName} detected unet",
            nameof(UNet2DConditionConfig.AttentionHeadDim), nameof(UNet2DConditionConfig.SampleSize), nameof(UNet2DConditionConfig.UpcastAttention),
            nameof(UNet2DConditionConfig.OnlyCrossAttention));
        AssertSameOnlyCrossAttention(expected, plan.UNetConfig(), $"{caseName} detected unet");
        AssertSameConfig(AutoencoderKLConfig.FromFile(ComponentConfig(caseName, "vae")), plan.VaeConfig(), $"{caseName} detected vae",
            nameof(AutoencoderKLConfig.SampleSize));
        AssertSameConfig(CLIPTextConfig.Load(ComponentConfig(caseName, "text_encoder")), plan.TextEncoderConfig(), $"{caseName} detected text",
            nameof(CLIPTextConfig.NumAttentionHeads));

        // diffusers' rule for SD 2.x text-to-image without global_step is v_prediction; the override restores epsilon.
        string expectedPrediction = ExpectedVariant(caseName) is ModelKind.TextToImage or ModelKind.Upscale ? "v_prediction" : "epsilon";
        Assert.Equal(expectedPrediction, plan.PredictionType);
        if (plan.Kind == ModelKind.TextToImage)
        {
            Assert.Contains(assumptions, a => a.Contains("global_step 875000", StringComparison.Ordinal));
            Assert.Equal(768, plan.DefaultSize);
            Assert.True(plan.UNetConfig().UpcastAttention);
            var epsilon = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { UseConfigBesideCheckpoint = false, PredictionType = "epsilon" });
            Assert.Equal("epsilon", epsilon.PredictionType);
            Assert.Equal(512, epsilon.DefaultSize);
            Assert.False(epsilon.UNetConfig().UpcastAttention);
            using var scheduler = epsilon.SchedulerConfig();
            Assert.Equal("epsilon", scheduler.RootElement.GetProperty("prediction_type").GetString());
        }
    }

    [Fact]
    public void ConfigBesideTheCheckpointIsFoundByName()
    {
        using var folder = new TempFolder("sd-single-file-");
        var checkpoint = Path.Combine(folder.Path, "tiny-v.safetensors");
        File.Copy(SingleFilePath("img2img"), checkpoint);
        File.Copy(LdmConfig("img2img"), Path.Combine(folder.Path, "tiny-v.yaml"));
        var plan = SingleFilePlanner.Plan(checkpoint);
        Assert.Equal(Path.Combine(folder.Path, "tiny-v.yaml"), plan.ConfigPath);
        Assert.Equal("v_prediction", plan.PredictionType); // from parameterization: v
        Assert.Equal(new[] { 2 }, plan.UNetConfig().AttentionHeadDim.Distinct());
    }

    [Fact]
    public void ComponentsLoadedFromTheSingleFileReproduceTheGoldenOutputs()
    {
        const string caseName = "txt2img_eps_dpmpp";
        var plan = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { ConfigPath = LdmConfig(caseName) });
        using var golden = Golden.Case(caseName);
        using var file = SafeTensorsFile.Open(plan.CheckpointPath);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();

        using var text = new CLIPTextModel(plan.TextEncoderConfig(), ScalarType.Float32, META);
        var textResult = SingleFileLoader.Materialize(text, file, plan.KeyMap, SingleFileComponent.TextEncoder, ScalarType.Float32, CPU);
        Assert.Equal(text.state_dict().Count, textResult.LoadedCount);
        text.eval();
        double textDiff = golden.AssertClose("prompt_embeds", text.forward(golden.Tensor("input_ids")).LastHiddenState);

        using var unet = new UNet2DConditionModel(plan.UNetConfig(), ScalarType.Float32, META);
        SingleFileLoader.Materialize(unet, file, plan.KeyMap, SingleFileComponent.UNet, ScalarType.Float32, CPU);
        unet.eval();
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);
        double unetDiff = golden.AssertClose("step00_unet_output",
            unet.forward(golden.Tensor("step00_unet_input"), golden.Tensor("step00_timestep"), context));

        using var vae = new AutoencoderKL(plan.VaeConfig(), ScalarType.Float32, META);
        SingleFileLoader.Materialize(vae, file, plan.KeyMap, SingleFileComponent.Vae, ScalarType.Float32, CPU);
        vae.eval();
        double vaeDiff = golden.AssertClose("vae_decode_output", vae.Decode(golden.Tensor("vae_decode_input")));
        _output.WriteLine($"max abs diff: prompt_embeds {textDiff:G3}, step00_unet_output {unetDiff:G3}, vae_decode_output {vaeDiff:G3}");
    }

    [Fact]
    public void UpscalerUNetFromTheSingleFileMatchesDiffusers()
    {
        const string caseName = "upscale_x4";
        var plan = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { ConfigPath = LdmConfig(caseName) });
        using var golden = Golden.Case(caseName);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var unet = new UNet2DConditionModel(plan.UNetConfig(), ScalarType.Float32, META);
        SingleFileLoader.Materialize(unet, plan, SingleFileComponent.UNet, ScalarType.Float32, CPU);
        unet.eval();
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);
        double diff = golden.AssertClose("step00_unet_output", unet.forward(golden.Tensor("step00_unet_input"),
            golden.Tensor("step00_timestep"), context, golden.Tensor("step00_class_labels")));
        _output.WriteLine($"upscale_x4 step00_unet_output max abs diff {diff:G3}");
    }

    [Fact]
    public void BundledTokenizerShipsWithItsNoticeAndMatchesThePipelineIds()
    {
        // Single files carry no tokenizer: the engine's copy (Data/clip-tokenizer, copied to the output) stands in.
        var folder = SingleFileModelPlan.TokenizerFolder;
        Assert.True(File.Exists(Path.Combine(folder, "THIRD-PARTY-NOTICES.txt")), folder);
        Assert.Contains("MIT License", File.ReadAllText(Path.Combine(folder, "THIRD-PARTY-NOTICES.txt")));
        var tokenizer = Engine.Text.ClipTokenizer.FromFolder(folder);
        using var golden = Golden.Case("txt2img_v");
        var call = golden.Json.RootElement.GetProperty("call");
        Assert.Equal(golden.Tensor("input_ids").data<long>().ToArray(),
            tokenizer.Encode(call.GetProperty("prompt").GetString()!).Select(id => (long)id).ToArray());
        Assert.Equal(golden.Tensor("uncond_input_ids").data<long>().ToArray(),
            tokenizer.Encode(call.GetProperty("negative_prompt").GetString()!).Select(id => (long)id).ToArray());
    }

    [Fact]
    public void AnUnknownKeyIsAnErrorThatNamesIt()
    {
        using var folder = new TempFolder("sd-single-file-");
        var path = Path.Combine(folder.Path, "extra.safetensors");
        using (var source = SafeTensorsFile.Open(SingleFilePath("inpaint")))
        using (var scope = torch.NewDisposeScope())
        {
            var tensors = source.Tensors.Keys.Select(k => (k, source.Read(k))).ToList();
            tensors.Add(("model.diffusion_model.input_blocks.1.1.mystery.weight", torch.zeros(3)));
            tensors.Add(("cond_stage_model.model.transformer.resblocks.23.attn.extra", torch.zeros(3)));
            SafeTensorsWriter.Write(path, tensors);
        }
        var error = Assert.Throws<UnknownCheckpointKeyException>(() =>
            SingleFilePlanner.Plan(path, new SingleFileOptions { ConfigPath = LdmConfig("inpaint") }));
        Assert.Contains("'model.diffusion_model.input_blocks.1.1.mystery.weight'", error.Message);
        Assert.Contains("'cond_stage_model.model.transformer.resblocks.23.attn.extra'", error.Message);
        Assert.Equal(2, error.Keys.Count);
        Assert.Contains(path, error.Message);

        // The loader refuses it too, before touching the module.
        var plan = SingleFilePlanner.Plan(SingleFilePath("inpaint"), new SingleFileOptions { ConfigPath = LdmConfig("inpaint") });
        using var file = SafeTensorsFile.Open(path);
        using var vae = new AutoencoderKL(plan.VaeConfig(), device: META);
        Assert.Throws<UnknownCheckpointKeyException>(() =>
            SingleFileLoader.Materialize(vae, file, plan.KeyMap, SingleFileComponent.Vae, ScalarType.Float32, CPU));
        Assert.Throws<UnknownCheckpointKeyException>(() => plan.KeyMapFor(SingleFileComponent.UNet)("first_stage_model.encoder.mystery"));
    }

    [Fact]
    public void KeyMapFunctionLoadsTheUNetThroughTheStrictLoader()
    {
        // Every UNet key is 1:1, so the plain key-map function works with StateDictLoader; converted keys say so.
        var plan = SingleFilePlanner.Plan(SingleFilePath("depth2img"), new SingleFileOptions { ConfigPath = LdmConfig("depth2img") });
        using var unet = new UNet2DConditionModel(plan.UNetConfig(), ScalarType.Float32, CPU);
        using var file = SafeTensorsFile.Open(plan.CheckpointPath);
        var result = PSStableDiffusion.Engine.Loading.StateDictLoader.Load(unet, file, plan.KeyMapFor(SingleFileComponent.UNet));
        Assert.Equal(unet.state_dict().Count, result.LoadedCount);
        Assert.Contains("first_stage_model.decoder.conv_in.weight", result.IgnoredKeys);
        var error = Assert.Throws<NotSupportedException>(() => plan.KeyMapFor(SingleFileComponent.Vae)("first_stage_model.encoder.mid.attn_1.q.weight"));
        Assert.Contains("SingleFileLoader", error.Message);
    }

    [Fact]
    public void ConfigThatDisagreesWithTheWeightsIsRefused()
    {
        using var folder = new TempFolder("sd-single-file-");
        var yaml = Path.Combine(folder.Path, "wrong.yaml");
        File.WriteAllText(yaml, File.ReadAllText(LdmConfig("inpaint")).Replace("num_res_blocks: 2", "num_res_blocks: 3", StringComparison.Ordinal));
        var error = Assert.Throws<SingleFileCheckpointException>(() =>
            SingleFilePlanner.Plan(SingleFilePath("inpaint"), new SingleFileOptions { ConfigPath = yaml }));
        Assert.Contains("num_res_blocks = 3", error.Message);
        Assert.Contains("2", error.Message);
    }
}
