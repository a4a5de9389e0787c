using System.Text.Json;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using PSStableDiffusion.Engine.Text;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>The pipeline reads prompts as AUTOMATIC1111 does (tests/golden/prompts), or literally on request.</summary>
public class PromptSyntaxPipelineTests
{
    // The prompt fixture's pipeline_* cases were encoded with this case's text encoder (the pipeline cases share it).
    private const string CaseName = "txt2img_eps_dpmpp";

    private static (string Prompt, double Tolerance) FixtureCase(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.Path("prompts", "embeddings.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);
        return (c.GetProperty("prompt").GetString()!, c.GetProperty("tolerance_max_abs").GetDouble());
    }

    [Fact]
    public void LongWeightedPromptAgainstAShortNegativeUsesTheReferenceEmbeddingsAndTwoUNetCalls()
    {
        var (prompt, promptTolerance) = FixtureCase("pipeline_case20");      // three chunks, weights and commas
        var (negative, negativeTolerance) = FixtureCase("pipeline_case02");  // one chunk, weights
        using var golden = Golden.Case(CaseName);
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        using var io = SafeTensorsFile.Open(Golden.Path("prompts", "embeddings.safetensors"));
        var seen = new Dictionary<string, Tensor>();
        var logs = new List<string>();
        var observer = new PipelineObserver
        {
            Log = logs.Add,
            Inspect = (name, t) => { if (name is "prompt_embeds" or "negative_prompt_embeds" or "step00_unet_input" or "step00_unet_output" or "step00_timestep") seen[name] = t.clone().DetachFromDisposeScope(); },
        };
        var request = new GenerationRequest { Prompt = prompt, NegativePrompt = negative, Steps = 2, Seed = 5, Width = 64, Height = 48 };

        using var result = StableDiffusionPipeline.Generate(model, request, observer);

        Golden.AssertClose(io.Read("pipeline_case20"), seen["prompt_embeds"], promptTolerance, "prompt_embeds");               // [1, 231, D]
        Golden.AssertClose(io.Read("pipeline_case02"), seen["negative_prompt_embeds"], negativeTolerance, "negative_prompt_embeds"); // [1, 77, D]
        Assert.Contains(logs, l => l.Contains("runs the UNet twice", StringComparison.Ordinal));
        // Each half of the guided batch went through the UNet with its own conditioning.
        using var _ = torch.no_grad();
        var input = seen["step00_unet_input"];
        var timestep = seen["step00_timestep"];
        var negativeAlone = model.Unet.forward(input[..1], timestep, seen["negative_prompt_embeds"]);  // [1, 4, h, w]
        var promptAlone = model.Unet.forward(input[1..], timestep, seen["prompt_embeds"]);             // [1, 4, h, w]
        Assert.True(torch.cat(new[] { negativeAlone, promptAlone }).equal(seen["step00_unet_output"]).all().item<bool>());
        Assert.True(result.Images.isfinite().all().item<bool>());
        foreach (var t in seen.Values) t.Dispose();
    }

    [Fact]
    public void LiteralSyntaxKeepsTheBracketsAndCutsAt77TokensWithAWarning()
    {
        using var golden = Golden.Case(CaseName);
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        string prompt = "a (red:1.3) fox, " + string.Join(' ', Enumerable.Repeat("cat", 100));
        var warnings = new List<string>();
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();

        var literal = model.PromptEncoder.Encode(prompt, PromptSyntax.None, warnings.Add).Embeds;          // [1, 77, D]
        var a1111 = model.PromptEncoder.Encode(prompt, PromptSyntax.Automatic1111, warnings.Add).Embeds;   // [1, 154, D]

        Assert.Equal(new long[] { 1, 77, literal.shape[2] }, literal.shape);
        Assert.Equal(new long[] { 1, 154, literal.shape[2] }, a1111.shape);
        Assert.Contains("cut off", Assert.Single(warnings));
        Assert.False(literal.equal(a1111[.., ..77]).all().item<bool>());
    }

    [Fact]
    public void PlainShortPromptIsTheSameBitsInBothSyntaxes()
    {
        using var golden = Golden.Case(CaseName);
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var prompt = golden.Json.RootElement.GetProperty("call").GetProperty("prompt").GetString()!;
        var literal = model.PromptEncoder.Encode(prompt, PromptSyntax.None).Embeds;
        var a1111 = model.PromptEncoder.Encode(prompt, PromptSyntax.Automatic1111).Embeds;
        Assert.True(literal.equal(a1111).all().item<bool>());
        golden.AssertClose("prompt_embeds", a1111);
    }
}
