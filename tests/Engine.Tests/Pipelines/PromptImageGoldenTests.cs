using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// Whole images against diffusers' StableDiffusionPipeline (tests/golden/textual_inversion/images.*): an A1111 .pt
/// embedding in the negative prompt (diffusers ran it with load_textual_inversion), and a weighted two-chunk prompt
/// against a weighted two-chunk negative prompt (diffusers ran A1111's encoding, given as prompt_embeds).
/// </summary>
public sealed class PromptImageGoldenTests(ITestOutputHelper output)
{
    private static readonly string[] Compared = ["prompt_embeds", "negative_prompt_embeds", "final_latents", "vae_decode_output"];

    [Theory]
    [InlineData("ti_negative")]
    [InlineData("long_weighted")]
    public void ImageMatchesDiffusers(string caseName)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.Path("textual_inversion", "images.json")));
        var c = doc.RootElement.GetProperty("cases").EnumerateArray().Single(e => e.GetProperty("name").GetString() == caseName);
        var call = c.GetProperty("call");
        var tolerances = doc.RootElement.GetProperty("tolerances");
        double Tolerance(string name) => c.TryGetProperty(name + "_tolerance", out var own) ? own.GetDouble() : tolerances.GetProperty(name).GetDouble();

        using var model = DiffusersFolderLoader.Load(Golden.Path("txt2img_eps_dpmpp", "model"), ComputeTarget.Cpu32);
        using var io = SafeTensorsFile.Open(Golden.Path("textual_inversion", "images.safetensors"));
        var seen = new List<string>();
        var observer = new PipelineObserver
        {
            Inspect = (name, actual) =>
            {
                if (!Compared.Contains(name)) return;
                var diff = Golden.AssertClose(io.Read($"{caseName}/{name}"), actual, Tolerance(name), $"{caseName}/{name}");
                output.WriteLine($"{caseName} {name}: max abs diff {diff:G3} (tolerance {Tolerance(name):G3})");
                seen.Add(name);
            },
        };
        var request = new GenerationRequest
        {
            Prompt = call.GetProperty("prompt").GetString()!,
            NegativePrompt = call.GetProperty("negative_prompt").GetString()!,
            Steps = call.GetProperty("num_inference_steps").GetInt32(),
            GuidanceScale = call.GetProperty("guidance_scale").GetDouble(),
            Width = call.GetProperty("width").GetInt32(),
            Height = call.GetProperty("height").GetInt32(),
            Seed = c.GetProperty("seed").GetInt64(),
            EmbeddingPaths = c.TryGetProperty("embedding_path", out var path) ? [Golden.Path("textual_inversion", path.GetString()!)] : null,
        };

        using var result = StableDiffusionPipeline.Generate(model, request, observer);

        Assert.Equal(Compared, seen);
        var image = (result.Images.ScalarSafe() / 2 + 0.5).Clamp(0, 1).Tensor.permute(0, 2, 3, 1)[0]; // [H, W, 3]
        var diffImage = Golden.AssertClose(io.Read($"{caseName}/image_float"), image, Tolerance("image_float"), $"{caseName}/image_float");
        output.WriteLine($"{caseName} image_float: max abs diff {diffImage:G3}");
        if (caseName == "ti_negative")
            Assert.Equal("a1111-style", Assert.Single(result.Embeddings).Name);
        else
            Assert.Empty(result.Embeddings);
    }
}
