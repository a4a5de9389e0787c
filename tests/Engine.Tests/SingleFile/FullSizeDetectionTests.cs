using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.SingleFile.SingleFileTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.SingleFile;

/// <summary>
/// Full-size SD 2.x checkpoints in the original layout, written as headers over sparse data (no gigabytes touched):
/// detection must recover diffusers' published configs (the copies embedded in <see cref="KnownModelConfigs"/>, taken
/// from the stabilityai/stable-diffusion-2-1, -2-1-base, -2-inpainting, -2-depth and -x4-upscaler repositories), and the
/// models those configs build on the meta device must have exactly the mapped keys and shapes.
/// </summary>
public sealed class FullSizeDetectionTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly TempFolder _temp = new("sd-full-size-");

    public FullSizeDetectionTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(KnownModel.Sd21_768V, ModelKind.TextToImage, null, "v_prediction", 768)]
    [InlineData(KnownModel.Sd21_512Base, ModelKind.TextToImage, "epsilon", "epsilon", 512)]
    [InlineData(KnownModel.Sd2Inpainting, ModelKind.Inpaint, null, "epsilon", 512)]
    [InlineData(KnownModel.Sd2Depth, ModelKind.Depth, null, "epsilon", 512)]
    [InlineData(KnownModel.X4Upscaler, ModelKind.Upscale, null, "v_prediction", 512)]
    public void DetectionRecoversThePublishedConfigsAndTheModelsMatchTheMap(KnownModel model, ModelKind variant,
        string? predictionOverride, string prediction, int defaultSize)
    {
        var published = (UNet: KnownModelConfigs.UNet(model), Vae: KnownModelConfigs.Vae(model), Text: PublishedTextConfig());
        var path = WriteOriginalLayoutCheckpoint(model, published.UNet, published.Vae, published.Text);
        _output.WriteLine($"{model}: {new FileInfo(path).Length / 1e9:F2} GB apparent size");

        var plan = SingleFilePlanner.Plan(path, new SingleFileOptions { PredictionType = predictionOverride });
        foreach (var note in plan.Notes) _output.WriteLine(note);
        Assert.Equal(variant, plan.Kind);
        Assert.Equal(prediction, plan.PredictionType);
        Assert.Equal(defaultSize, plan.DefaultSize);
        Assert.Contains(plan.Assumptions, a => a.Contains(model == KnownModel.X4Upscaler ? "8 attention heads" : "64 channels per attention head", StringComparison.Ordinal));

        // Every field of the published UNet and text encoder configs; for the VAE all but the x4 upscaler's sample_size
        // (published 256, a tiling hint diffusers never ties to the UNet's 128-latent default; we derive 4 x 128).
        AssertSameConfig(published.UNet, plan.UNetConfig(), $"{model} unet", nameof(UNet2DConditionConfig.OnlyCrossAttention));
        AssertSameOnlyCrossAttention(published.UNet, plan.UNetConfig(), $"{model} unet");
        AssertSameConfig(published.Vae, plan.VaeConfig(), $"{model} vae",
            model == KnownModel.X4Upscaler ? new[] { nameof(AutoencoderKLConfig.SampleSize) } : Array.Empty<string>());
        AssertSameConfig(published.Text, plan.TextEncoderConfig(), $"{model} text_encoder");
        Assert.Equal(model == KnownModel.X4Upscaler, plan.LowResSchedulerConfigJson is not null);

        // The plan's configs build models (on the meta device: no memory) whose state dicts are the map, one for one.
        using (var unet = new UNet2DConditionModel(plan.UNetConfig(), device: META))
            AssertSameKeysAndShapes(plan.KeyMap.ModuleKeys(SingleFileComponent.UNet), unet.state_dict());
        using (var vae = new AutoencoderKL(plan.VaeConfig(), device: META))
            AssertSameKeysAndShapes(plan.KeyMap.ModuleKeys(SingleFileComponent.Vae), vae.state_dict());
        using (var text = new CLIPTextModel(plan.TextEncoderConfig(), ScalarType.Float32, META))
            AssertSameKeysAndShapes(plan.KeyMap.ModuleKeys(SingleFileComponent.TextEncoder), text.state_dict());
    }

    [Fact]
    public void FullSizeMapHasTheSd2KeyCounts()
    {
        var map = new LdmKeyMap(ArchitectureOf(KnownModelConfigs.UNet(KnownModel.Sd21_768V), KnownModelConfigs.Vae(KnownModel.Sd21_768V), PublishedTextConfig()));
        // 686 UNet tensors, as UNetArchitectureTests derives diffusers' SD 2.x UNet.
        Assert.Equal(686, map.ModuleKeys(SingleFileComponent.UNet).Count);
        Assert.Equal(23 * 16 + 4, map.ModuleKeys(SingleFileComponent.TextEncoder).Count);
        // The checkpoint side: one key per UNet and VAE tensor; a text block has 12 (fused q/k/v) for the module's 16.
        int vae = map.ModuleKeys(SingleFileComponent.Vae).Count;
        Assert.Equal(686 + vae + 23 * 12 + 4, map.SourceKeys.Count());
    }

    [Fact]
    public void StrayEmaOrDepthKeysAreErrors()
    {
        var published = (UNet: KnownModelConfigs.UNet(KnownModel.Sd21_512Base), Vae: KnownModelConfigs.Vae(KnownModel.Sd21_512Base), Text: PublishedTextConfig());
        var map = new LdmKeyMap(ArchitectureOf(published.UNet, published.Vae, published.Text));
        Assert.True(map.IsIgnored("model_ema.diffusion_modelmiddle_block1proj_inweight"));
        Assert.True(map.IsIgnored("model_ema.num_updates"));
        Assert.False(map.IsKnown("model_ema.diffusion_modelmiddle_block9proj_inweight"));
        Assert.False(map.IsKnown("depth_model.model.pretrained.act_postprocess1.0.project.0.weight")); // only the depth variant skips MiDaS
        Assert.False(map.IsKnown("cond_stage_model.model.transformer.resblocks.24.ln_1.weight"));
        Assert.Throws<UnknownCheckpointKeyException>(() => map.Resolve("model.diffusion_model.input_blocks.12.0.op.weight"));
    }

    private static CLIPTextConfig PublishedTextConfig() =>
        ConfigJson.Parse<CLIPTextConfig>(KnownModelConfigs.ReadJson("sd21-text_encoder.json"), "sd21-text_encoder.json");

    /// <summary>The ldm architecture a published diffusers config describes (for writing the test checkpoint only).</summary>
    private static LdmArchitecture ArchitectureOf(UNet2DConditionConfig u, AutoencoderKLConfig v, CLIPTextConfig t)
    {
        int levels = u.BlockOutChannels.Length;
        var onlyCross = u.OnlyCrossAttention.Length == 1 ? Enumerable.Repeat(u.OnlyCrossAttention[0], levels).ToArray() : u.OnlyCrossAttention;
        var unet = new LdmUNetArchitecture(u.InChannels, u.OutChannels, u.BlockOutChannels, u.LayersPerBlock[0],
            u.DownBlockTypes.Select(b => b == "CrossAttnDownBlock2D").ToArray(), onlyCross, u.TransformerLayersPerBlock[0],
            u.CrossAttentionDim[0], u.UseLinearProjection, u.NumClassEmbeds);
        var vae = new LdmVaeArchitecture(v.InChannels, v.OutChannels, v.BlockOutChannels, v.LayersPerBlock, v.LatentChannels);
        var text = new LdmTextArchitecture(t.HiddenSize, t.NumHiddenLayers, t.NumHiddenLayers + 1, t.IntermediateSize, t.VocabSize, t.MaxPositionEmbeddings);
        return new LdmArchitecture(unet, vae, text);
    }

    /// <summary>
    /// Writes what a released checkpoint holds: every weight in the original layout, the unused last text block,
    /// text_projection and logit_scale, the schedule buffers, and per model the EMA copies (768-v), the MiDaS weights
    /// (depth) or the low-res schedule (upscaler).
    /// </summary>
    private string WriteOriginalLayoutCheckpoint(KnownModel model, UNet2DConditionConfig unet, AutoencoderKLConfig vae, CLIPTextConfig text)
    {
        var map = new LdmKeyMap(ArchitectureOf(unet, vae, text));
        var tensors = map.SourceKeys.Select(k => (k, map.Resolve(k)[0].SourceShape)).ToList();
        tensors.AddRange(LdmKeyMap.ScheduleBuffers.Select(k => (k, new long[] { 1000 })));
        tensors.AddRange(LdmKeyMap.TextBlockKeys.Select(k =>
            ($"{LdmKeyMap.TextPrefix}transformer.resblocks.{text.NumHiddenLayers}.{k}", ShapeOfTextBlockKey(k, text))));
        tensors.Add((LdmKeyMap.TextPrefix + "text_projection", new long[] { text.HiddenSize, text.HiddenSize }));
        tensors.Add((LdmKeyMap.TextPrefix + "logit_scale", Array.Empty<long>()));
        switch (model)
        {
            case KnownModel.Sd21_768V:
                tensors.Add(("model_ema.decay", Array.Empty<long>()));
                tensors.Add(("model_ema.num_updates", Array.Empty<long>()));
                tensors.AddRange(map.SourceKeys.Where(k => k.StartsWith(LdmKeyMap.UNetPrefix, StringComparison.Ordinal))
                    .Select(k => ("model_ema." + k["model.".Length..].Replace(".", ""), map.Resolve(k)[0].SourceShape)));
                break;
            case KnownModel.Sd2Depth:
                tensors.Add(("depth_model.model.pretrained.model.cls_token", new long[] { 1, 1, 768 }));
                tensors.Add(("depth_model.model.scratch.output_conv.4.weight", new long[] { 1, 32, 1, 1 }));
                break;
            case KnownModel.X4Upscaler:
                tensors.AddRange(LdmKeyMap.LowScaleModelBuffers.Select(k => ("low_scale_model." + k, new long[] { 350 })));
                break;
        }
        var path = Path.Combine(_temp.Path, $"{model}.safetensors");
        WriteSparseCheckpoint(path, tensors);
        return path;
    }

    private static long[] ShapeOfTextBlockKey(string key, CLIPTextConfig t)
    {
        long w = t.HiddenSize, m = t.IntermediateSize;
        return key switch
        {
            "attn.in_proj_weight" => new[] { 3 * w, w },
            "attn.in_proj_bias" => new[] { 3 * w },
            "attn.out_proj.weight" => new[] { w, w },
            "mlp.c_fc.weight" => new[] { m, w },
            "mlp.c_fc.bias" => new[] { m },
            "mlp.c_proj.weight" => new[] { w, m },
            _ => new[] { w },
        };
    }

    private static void AssertSameKeysAndShapes(IReadOnlyDictionary<string, LdmKeyMapping> mapped, Dictionary<string, Tensor> state)
    {
        Assert.All(state.Values, t => Assert.True(t.is_meta));
        Assert.Empty(state.Keys.Except(mapped.Keys).Order());
        Assert.Empty(mapped.Keys.Except(state.Keys).Order());
        foreach (var (key, tensor) in state)
            Assert.True(tensor.shape.SequenceEqual(mapped[key].ModuleShape),
                $"'{key}': module [{string.Join(", ", tensor.shape)}], map [{string.Join(", ", mapped[key].ModuleShape)}]");
    }
}
