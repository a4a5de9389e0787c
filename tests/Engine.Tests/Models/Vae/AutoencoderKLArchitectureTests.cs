using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Vae;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Vae;

/// <summary>Full-size VAEs built on the meta device, checked against diffusers' AutoencoderKL keys derived below.</summary>
public class AutoencoderKLArchitectureTests
{
    [Fact]
    public void Sd2VaeHasExactlyTheDiffusersKeysAndShapes()
    {
        var config = KnownModelConfigs.Vae(KnownModel.Sd21_768V);
        using var vae = new AutoencoderKL(config, device: torch.META);
        var actual = vae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);

        var expected = ExpectedVae(new long[] { 128, 256, 512, 512 });
        Assert.Equal(248, expected.Count); // encoder 106 + decoder 138 + quant/post_quant 4
        AssertSameKeysAndShapes(expected, actual);
        // The published size of the SD VAE (kl-f8): 83,653,863 parameters.
        Assert.Equal(83_653_863L, actual.Values.Sum(shape => shape.Aggregate(1L, (a, b) => a * b)));
        Assert.Equal(0.18215, vae.ScalingFactor);
        Assert.Equal(8, config.DownscaleFactor);
    }

    [Fact]
    public void X4UpscalerVaeIsThreeLevelsWithItsOwnScalingFactor()
    {
        var config = KnownModelConfigs.Vae(KnownModel.X4Upscaler);
        using var vae = new AutoencoderKL(config, device: torch.META);
        AssertSameKeysAndShapes(ExpectedVae(new long[] { 128, 256, 512 }),
            vae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape));
        Assert.Equal(0.08333, vae.ScalingFactor);
        Assert.Equal(4, config.DownscaleFactor);
    }

    [Fact]
    public void RejectsUnsupportedBlockTypeNamingIt()
    {
        var json = "{ \"block_out_channels\": [32], \"down_block_types\": [\"AttnDownEncoderBlock2D\"], \"up_block_types\": [\"UpDecoderBlock2D\"] }";
        var error = Assert.Throws<NotSupportedException>(() => AutoencoderKLConfig.FromJson(json, "vae.json"));
        Assert.Contains("'down_block_types'", error.Message);
        Assert.Contains("AttnDownEncoderBlock2D", error.Message);
    }

    private static void AssertSameKeysAndShapes(Dictionary<string, long[]> expected, Dictionary<string, long[]> actual)
    {
        Assert.Empty(expected.Keys.Except(actual.Keys).Order());
        Assert.Empty(actual.Keys.Except(expected.Keys).Order());
        foreach (var (key, shape) in expected)
            Assert.True(shape.SequenceEqual(actual[key]), $"{key}: expected [{string.Join(",", shape)}], got [{string.Join(",", actual[key])}]");
    }

    /// <summary>Keys of diffusers' AutoencoderKL with 2 resnets per encoder level, 3 per decoder level, latent 4, double_z.</summary>
    private static Dictionary<string, long[]> ExpectedVae(long[] widths)
    {
        var keys = new Dictionary<string, long[]>();
        void Conv(string name, long o, long i, long k) { keys[name + ".weight"] = new[] { o, i, k, k }; keys[name + ".bias"] = new[] { o }; }
        void Linear(string name, long o, long i) { keys[name + ".weight"] = new[] { o, i }; keys[name + ".bias"] = new[] { o }; }
        void Norm(string name, long c) { keys[name + ".weight"] = new[] { c }; keys[name + ".bias"] = new[] { c }; }
        void Resnet(string name, long i, long o)
        {
            Norm(name + ".norm1", i); Conv(name + ".conv1", o, i, 3); Norm(name + ".norm2", o); Conv(name + ".conv2", o, o, 3);
            if (i != o) Conv(name + ".conv_shortcut", o, i, 1);
        }
        void Mid(string name, long c)
        {
            Resnet(name + ".resnets.0", c, c);
            Norm(name + ".attentions.0.group_norm", c);
            foreach (var projection in new[] { "to_q", "to_k", "to_v", "to_out.0" }) Linear($"{name}.attentions.0.{projection}", c, c);
            Resnet(name + ".resnets.1", c, c);
        }

        var levels = widths.Length;
        Conv("encoder.conv_in", widths[0], 3, 3);
        for (var level = 0; level < levels; level++)
        {
            for (var r = 0; r < 2; r++)
                Resnet($"encoder.down_blocks.{level}.resnets.{r}", r == 0 ? widths[Math.Max(level - 1, 0)] : widths[level], widths[level]);
            if (level < levels - 1) Conv($"encoder.down_blocks.{level}.downsamplers.0.conv", widths[level], widths[level], 3);
        }
        Mid("encoder.mid_block", widths[^1]);
        Norm("encoder.conv_norm_out", widths[^1]);
        Conv("encoder.conv_out", 8, widths[^1], 3);

        Conv("decoder.conv_in", widths[^1], 4, 3);
        Mid("decoder.mid_block", widths[^1]);
        for (var level = 0; level < levels; level++)
        {
            var width = widths[levels - 1 - level];
            var previous = widths[Math.Min(levels - level, levels - 1)];
            for (var r = 0; r < 3; r++)
                Resnet($"decoder.up_blocks.{level}.resnets.{r}", r == 0 ? previous : width, width);
            if (level < levels - 1) Conv($"decoder.up_blocks.{level}.upsamplers.0.conv", width, width, 3);
        }
        Norm("decoder.conv_norm_out", widths[0]);
        Conv("decoder.conv_out", 3, widths[0], 3);

        Conv("quant_conv", 8, 8, 1);
        Conv("post_quant_conv", 4, 4, 1);
        return keys;
    }
}
