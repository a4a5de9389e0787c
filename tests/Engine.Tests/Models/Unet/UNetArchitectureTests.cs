using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Unet;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Unet;

/// <summary>
/// Full-size UNets built on the meta device (no memory), checked against the key names and shapes of diffusers'
/// UNet2DConditionModel as derived below from its architecture, independently of the model code.
/// </summary>
public class UNetArchitectureTests
{
    [Fact]
    public void Sd21UNetHasExactlyTheDiffusersKeysAndShapes()
    {
        using var unet = new UNet2DConditionModel(KnownModelConfigs.UNet(KnownModel.Sd21_768V), device: torch.META);
        var actual = unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        foreach (var tensor in unet.parameters()) Assert.Equal(DeviceType.META, tensor.device_type);

        var expected = ExpectedSd2UNet(inChannels: 4);
        Assert.Equal(686, expected.Count); // 246 down + 46 mid + 384 up + 10 stem/time/head keys
        AssertSameKeysAndShapes(expected, actual);
        // The published size of the SD 2.x UNet: 865,910,724 parameters.
        Assert.Equal(865_910_724L, actual.Values.Sum(shape => shape.Aggregate(1L, (a, b) => a * b)));
    }

    [Theory]
    [InlineData(KnownModel.Sd2Inpainting, 9)]
    [InlineData(KnownModel.Sd2Depth, 5)]
    [InlineData(KnownModel.Sd21_512Base, 4)]
    public void Sd2VariantsDifferOnlyInInputChannels(KnownModel model, int inChannels)
    {
        using var unet = new UNet2DConditionModel(KnownModelConfigs.UNet(model), device: torch.META);
        AssertSameKeysAndShapes(ExpectedSd2UNet(inChannels), unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape));
    }

    [Fact]
    public void X4UpscalerUNetHasClassEmbeddingAndCrossOnlyFirstAttention()
    {
        var config = KnownModelConfigs.UNet(KnownModel.X4Upscaler);
        using var unet = new UNet2DConditionModel(config, device: torch.META);
        var shapes = unet.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new long[] { 256, 7, 3, 3 }, shapes["conv_in.weight"]);
        Assert.Equal(new long[] { 1000, 1024 }, shapes["class_embedding.weight"]); // time_embed_dim = 4 x 256
        // only_cross_attention [true, true, true, false]: attn1 of the 512-wide level attends to the 1024-wide text.
        Assert.Equal(new long[] { 512, 1024 }, shapes["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
        // The up path reads it reversed: up block 1 (512 wide) is cross-only, up block 3 is UpBlock2D with no attention.
        Assert.Equal(new long[] { 512, 1024 }, shapes["up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_k.weight"]);
        Assert.DoesNotContain(shapes.Keys, k => k.StartsWith("up_blocks.3.attentions", StringComparison.Ordinal));
        Assert.DoesNotContain(shapes.Keys, k => k.StartsWith("down_blocks.0.attentions", StringComparison.Ordinal));
        // The mid block keeps self-attention: 1024 -> 1024.
        Assert.Equal(new long[] { 1024, 1024 }, shapes["mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight"]);
    }

    private static void AssertSameKeysAndShapes(Dictionary<string, long[]> expected, Dictionary<string, long[]> actual)
    {
        Assert.Empty(expected.Keys.Except(actual.Keys).Order());
        Assert.Empty(actual.Keys.Except(expected.Keys).Order());
        foreach (var (key, shape) in expected)
            Assert.True(shape.SequenceEqual(actual[key]), $"{key}: expected [{string.Join(",", shape)}], got [{string.Join(",", actual[key])}]");
    }

    /// <summary>
    /// Keys of the SD 2.x UNet (widths 320/640/1280/1280, heads x head_dim = width, text width 1024, linear projections,
    /// 2 resnets per down level and 3 per up level, attention on the three widest-resolution levels).
    /// </summary>
    private static Dictionary<string, long[]> ExpectedSd2UNet(int inChannels)
    {
        const long context = 1024, temb = 1280;
        var keys = new Dictionary<string, long[]>();
        void Conv(string name, long o, long i, long k) { keys[name + ".weight"] = new[] { o, i, k, k }; keys[name + ".bias"] = new[] { o }; }
        void Linear(string name, long o, long i, bool bias = true) { keys[name + ".weight"] = new[] { o, i }; if (bias) keys[name + ".bias"] = new[] { o }; }
        void Norm(string name, long c) { keys[name + ".weight"] = new[] { c }; keys[name + ".bias"] = new[] { c }; }
        void Resnet(string name, long i, long o)
        {
            Norm(name + ".norm1", i); Conv(name + ".conv1", o, i, 3); Linear(name + ".time_emb_proj", o, temb);
            Norm(name + ".norm2", o); Conv(name + ".conv2", o, o, 3);
            if (i != o) Conv(name + ".conv_shortcut", o, i, 1);
        }
        void Transformer(string name, long c)
        {
            Norm(name + ".norm", c); Linear(name + ".proj_in", c, c); Linear(name + ".proj_out", c, c);
            var block = name + ".transformer_blocks.0";
            foreach (var (attn, kv) in new[] { ("attn1", c), ("attn2", context) })
            {
                Linear($"{block}.{attn}.to_q", c, c, bias: false);
                Linear($"{block}.{attn}.to_k", c, kv, bias: false);
                Linear($"{block}.{attn}.to_v", c, kv, bias: false);
                Linear($"{block}.{attn}.to_out.0", c, c);
            }
            Norm(block + ".norm1", c); Norm(block + ".norm2", c); Norm(block + ".norm3", c);
            Linear(block + ".ff.net.0.proj", 8 * c, c); // GEGLU: 2 x (4c)
            Linear(block + ".ff.net.2", c, 4 * c);
        }

        long[] widths = { 320, 640, 1280, 1280 };
        Conv("conv_in", 320, inChannels, 3);
        Linear("time_embedding.linear_1", temb, 320);
        Linear("time_embedding.linear_2", temb, temb);

        // Down: level L takes width[L-1] (320 for L=0) to width[L]; the last level has no attention, no downsampler.
        var skipWidths = new List<long> { 320 };
        for (var level = 0; level < 4; level++)
        {
            var inWidth = level == 0 ? 320 : widths[level - 1];
            for (var r = 0; r < 2; r++)
            {
                Resnet($"down_blocks.{level}.resnets.{r}", r == 0 ? inWidth : widths[level], widths[level]);
                if (level < 3) Transformer($"down_blocks.{level}.attentions.{r}", widths[level]);
                skipWidths.Add(widths[level]);
            }
            if (level < 3) { Conv($"down_blocks.{level}.downsamplers.0.conv", widths[level], widths[level], 3); skipWidths.Add(widths[level]); }
        }

        Resnet("mid_block.resnets.0", 1280, 1280);
        Transformer("mid_block.attentions.0", 1280);
        Resnet("mid_block.resnets.1", 1280, 1280);

        // Up: level U mirrors down level 3-U; each resnet takes the running width plus one skip, popped last-first.
        var running = 1280L;
        for (var level = 0; level < 4; level++)
        {
            var width = widths[3 - level];
            for (var r = 0; r < 3; r++)
            {
                var skip = skipWidths[^1];
                skipWidths.RemoveAt(skipWidths.Count - 1);
                Resnet($"up_blocks.{level}.resnets.{r}", running + skip, width);
                running = width;
                if (level > 0) Transformer($"up_blocks.{level}.attentions.{r}", width);
            }
            if (level < 3) Conv($"up_blocks.{level}.upsamplers.0.conv", width, width, 3);
        }
        Assert.Empty(skipWidths);

        Norm("conv_norm_out", 320);
        Conv("conv_out", 4, 320, 3);
        return keys;
    }
}
