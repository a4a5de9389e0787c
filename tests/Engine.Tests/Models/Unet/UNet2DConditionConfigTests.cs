using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Models.Unet;

public class UNet2DConditionConfigTests
{
    [Fact]
    public void ReadsScalarAndListFieldsOfTheGoldenUpscalerConfig()
    {
        var config = UNet2DConditionConfig.FromFile(Golden.Path("upscale_x4", "model", "unet", "config.json"));
        Assert.Equal(new[] { 8 }, config.AttentionHeadDim);
        Assert.Equal(new[] { true, true, false }, config.OnlyCrossAttention);
        Assert.Equal(1000, config.NumClassEmbeds);
        Assert.Equal(7, config.InChannels);
        Assert.Null(config.NumAttentionHeads);
    }

    [Fact]
    public void ReadsPerBlockHeadCountsOfTheGoldenTxt2ImgConfig()
    {
        var config = UNet2DConditionConfig.FromFile(Golden.Path("txt2img_v", "model", "unet", "config.json"));
        Assert.Equal(new[] { 2, 2, 2, 2 }, config.AttentionHeadDim);
        Assert.Equal(new[] { false }, config.OnlyCrossAttention);
        Assert.True(config.UpcastAttention);
        Assert.True(config.UseLinearProjection);
        Assert.Equal(new[] { 8 }, config.CrossAttentionDim);
    }

    [Theory]
    [InlineData("\"num_attention_heads\": 8", "num_attention_heads", "[8]")]
    [InlineData("\"resnet_time_scale_shift\": \"scale_shift\"", "resnet_time_scale_shift", "\"scale_shift\"")]
    [InlineData("\"attention_type\": \"gated\"", "attention_type", "\"gated\"")]
    [InlineData("\"mid_block_type\": null", "mid_block_type", "null")]
    [InlineData("\"addition_embed_type\": \"text_time\"", "addition_embed_type", "\"text_time\"")]
    [InlineData("\"class_embed_type\": \"timestep\"", "class_embed_type", "\"timestep\"")]
    [InlineData("\"time_embedding_type\": \"fourier\"", "time_embedding_type", "\"fourier\"")]
    [InlineData("\"conv_in_kernel\": 7", "conv_in_kernel", "7")]
    [InlineData("\"act_fn\": \"tanh\"", "act_fn", "\"tanh\"")]
    [InlineData("\"down_block_types\": [\"SimpleCrossAttnDownBlock2D\", \"DownBlock2D\"]", "down_block_types", "\"SimpleCrossAttnDownBlock2D\"")]
    public void RejectsUnsupportedValuesNamingFieldAndValue(string field, string name, string value)
    {
        var json = $"{{ \"block_out_channels\": [32, 64], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"], " +
                   $"\"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"attention_head_dim\": 2, {field} }}";
        var error = Assert.Throws<NotSupportedException>(() => UNet2DConditionConfig.FromJson(json, "test.json"));
        Assert.Contains($"'{name}'", error.Message);
        Assert.Contains(value, error.Message);
    }

    [Fact]
    public void RejectsMalformedJsonAsInvalidData()
    {
        var error = Assert.Throws<InvalidDataException>(() => UNet2DConditionConfig.FromJson("{ \"in_channels\": [1, 2] }", "bad.json"));
        Assert.Contains("bad.json", error.Message);
    }
}
