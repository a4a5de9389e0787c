using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Clip;

public class CLIPTextModelGoldenTests(ITestOutputHelper output)
{
    private static string TextEncoderCase => Golden.Path("text_encoder");

    [Fact]
    public void TextEncoderCaseReproducesPromptEmbedsEveryHiddenStateAndPooledOutput()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var io = SafeTensorsFile.Open(Path.Combine(TextEncoderCase, "io.safetensors"));
        using var caseJson = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TextEncoderCase, "case.json")));
        var tolerances = caseJson.RootElement.GetProperty("tolerances");
        var embedsTolerance = tolerances.GetProperty("prompt_embeds").GetProperty("max_abs").GetDouble();
        var hiddenTolerance = tolerances.GetProperty("hidden_states_XX").GetProperty("max_abs").GetDouble();

        using var model = CLIPTextModel.FromPretrained(Path.Combine(TextEncoderCase, "text_encoder"), ScalarType.Float32, CPU);
        var result = model.forward(io.Read("input_ids"), outputHiddenStates: true);

        var worst = Golden.AssertClose(io.Read("prompt_embeds"), result.LastHiddenState, embedsTolerance, "prompt_embeds");
        output.WriteLine($"prompt_embeds max abs diff {worst:G3} (tolerance {embedsTolerance:G3})");

        Assert.NotNull(result.HiddenStates);
        Assert.Equal(model.Config.NumHiddenLayers + 1, result.HiddenStates!.Count);
        var worstHidden = 0.0;
        for (var i = 0; i < result.HiddenStates.Count; i++)
        {
            var name = $"hidden_states_{i:D2}";
            worstHidden = Math.Max(worstHidden, Golden.AssertClose(io.Read(name), result.HiddenStates[i], hiddenTolerance, name));
        }
        output.WriteLine($"hidden_states_00..{result.HiddenStates.Count - 1:D2} max abs diff {worstHidden:G3} (tolerance {hiddenTolerance:G3})");

        // pooled_output has no tolerance of its own: it is a row of last_hidden_state, so the same one applies.
        var pooled = Golden.AssertClose(io.Read("pooled_output"), result.PooledOutput, embedsTolerance, "pooled_output");
        output.WriteLine($"pooled_output max abs diff {pooled:G3}");
    }

    [Fact]
    public void WithoutHiddenStatesOnlyTheLastStateIsReturned()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var io = SafeTensorsFile.Open(Path.Combine(TextEncoderCase, "io.safetensors"));
        using var model = CLIPTextModel.FromPretrained(Path.Combine(TextEncoderCase, "text_encoder"), ScalarType.Float32, CPU);
        var result = model.forward(io.Read("input_ids"));
        Assert.Null(result.HiddenStates);
        Golden.AssertClose(io.Read("prompt_embeds"), result.LastHiddenState, 2.25e-4, "prompt_embeds");
    }

    [Theory]
    [InlineData("txt2img_v")]
    [InlineData("txt2img_eps_dpmpp")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("depth2img")]
    [InlineData("upscale_x4")]
    public void PipelineCaseTextEmbeddingsMatch(string caseName)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var folder = Golden.Path(caseName);
        using var caseJson = Golden.ParseJson(File.ReadAllText(Path.Combine(folder, "case.json")));
        double Tolerance(string name) =>
            caseJson.RootElement.GetProperty("tolerances").GetProperty(name).GetProperty("max_abs").GetDouble();
        using var io = SafeTensorsFile.Open(Path.Combine(folder, "io.safetensors"));
        using var model = CLIPTextModel.FromPretrained(Path.Combine(folder, "model"), ScalarType.Float32, CPU);

        var cond = model.forward(io.Read("input_ids")).LastHiddenState;
        var condDiff = Golden.AssertClose(io.Read("prompt_embeds"), cond, Tolerance("prompt_embeds"), $"{caseName}/prompt_embeds");
        var uncond = model.forward(io.Read("uncond_input_ids")).LastHiddenState;
        var uncondDiff = Golden.AssertClose(io.Read("negative_prompt_embeds"), uncond, Tolerance("negative_prompt_embeds"),
            $"{caseName}/negative_prompt_embeds");
        output.WriteLine($"{caseName}: prompt_embeds {condDiff:G3} (tol {Tolerance("prompt_embeds"):G3}), " +
                         $"negative_prompt_embeds {uncondDiff:G3} (tol {Tolerance("negative_prompt_embeds"):G3})");
    }
}
