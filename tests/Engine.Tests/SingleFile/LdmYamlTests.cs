using PSStableDiffusion.Engine.SingleFile;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.SingleFile;

/// <summary>The YAML subset reader on the shapes Stability-AI's SD 2.x inference configs use.</summary>
public class LdmYamlTests
{
    // Laid out like Stability-AI's v2-inference-v.yaml / x4-upscaling.yaml: comments, quoted strings, flow and block
    // lists (the block list items at the key's own indent), capitalised booleans, exponent numbers, nested sections.
    private const string Stability = """
        model:
          base_learning_rate: 1.0e-4
          target: ldm.models.diffusion.ddpm.LatentDiffusion
          params:
            parameterization: "v"
            linear_start: 0.00085
            linear_end: 0.0120
            use_ema: False # we set this to false because this is an inference only config

            unet_config:
              target: ldm.modules.diffusionmodules.openaimodel.UNetModel
              params:
                attention_resolutions: [ 4, 2, 1 ]
                channel_mult: [ 1, 2, 4, 4 ]
                num_head_channels: 64 # need to fix for flash-attn
                disable_self_attentions: [True, True, True, False]
                use_linear_in_transformer: True
            first_stage_config:
              params:
                ddconfig:
                  #attn_type: "vanilla-xformers"
                  ch_mult:
                  - 1
                  - 2
                  - 4
                  - 4
                  attn_resolutions: []
            low_scale_config:
              params:
                noise_schedule_config: # image space
                  linear_start: 0.0001
            cond_stage_config:
              params: {freeze: True, layer: 'penultimate'}
        note: {text: a (b) c, n: 2,
          m: [1, 2]}
        """;

    [Fact]
    public void ReadsTheStabilityConfigLayout()
    {
        var root = LdmYaml.Parse(Stability, "test.yaml");
        Assert.Equal("v", root.GetString("model.params.parameterization", "t"));
        Assert.Equal(1.0e-4, root.GetDouble("model.base_learning_rate", "t"));
        Assert.Equal(0.012, root.GetDouble("model.params.linear_end", "t"));
        Assert.False(root.GetBool("model.params.use_ema", "t"));
        Assert.Equal(new[] { 4, 2, 1 }, root.GetIntList("model.params.unet_config.params.attention_resolutions", "t"));
        Assert.Equal(64, root.GetInt("model.params.unet_config.params.num_head_channels", "t"));
        Assert.Equal(new[] { true, true, true, false }, root.GetBoolList("model.params.unet_config.params.disable_self_attentions", "t"));
        Assert.Equal(new[] { 1, 2, 4, 4 }, root.GetIntList("model.params.first_stage_config.params.ddconfig.ch_mult", "t"));
        Assert.Empty(root.GetIntList("model.params.first_stage_config.params.ddconfig.attn_resolutions", "t")!);
        Assert.Equal(0.0001, root.GetDouble("model.params.low_scale_config.params.noise_schedule_config.linear_start", "t"));
        Assert.Equal("penultimate", root.GetString("model.params.cond_stage_config.params.layer", "t"));
        Assert.Equal("a (b) c", root.GetString("note.text", "t"));
        Assert.Equal(new[] { 1, 2 }, root.GetIntList("note.m", "t"));
        Assert.Null(root.Get("model.params.missing.key"));
    }

    [Theory]
    [InlineData("a: 1\na: 2", "duplicate key 'a'")]
    [InlineData("a: &anchor 1", "not supported")]
    [InlineData("a: |\n  text", "not supported")]
    [InlineData("a: [1, 2", "unterminated")]
    [InlineData("a: 1\n---\nb: 2", "multiple YAML documents")]
    [InlineData("a:\n  - b: 1", "mappings inside block sequences")]
    public void RefusesWhatItDoesNotSupportNamingTheLine(string text, string message)
    {
        var error = Assert.Throws<FormatException>(() => LdmYaml.Parse(text, "bad.yaml"));
        Assert.Contains("bad.yaml:", error.Message);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void TypedReadsNameTheField()
    {
        var root = LdmYaml.Parse("model:\n  params:\n    timesteps: many\n", "x.yaml");
        var error = Assert.Throws<FormatException>(() => root.GetInt("model.params.timesteps", "x.yaml"));
        Assert.Contains("'model.params.timesteps' = 'many'", error.Message);
    }
}
