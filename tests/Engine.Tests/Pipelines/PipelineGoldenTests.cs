using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.ModelSources;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// Whole text-to-image calls against diffusers: every intermediate the reference stored, with the stored noise
/// injected and from the seed alone (the CPU generator reproduces diffusers' draws).
/// </summary>
public class PipelineGoldenTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    public static TheoryData<string, bool> TextToImageCases => new()
    {
        { "txt2img_v", true }, { "txt2img_v", false },
        { "txt2img_eps_dpmpp", true }, { "txt2img_eps_dpmpp", false },
    };

    [Theory]
    [MemberData(nameof(TextToImageCases))]
    public void TextToImageMatchesDiffusersAtEveryStep(string caseName, bool injectStoredNoise)
    {
        using var golden = Golden.Case(caseName);
        var model = models.Get(caseName);
        var stored = new StoredNoise(golden);
        var compared = new List<string>();
        double worstRatio = 0;
        var observer = new PipelineObserver
        {
            Inspect = (name, actual) =>
            {
                if (!golden.Has(name)) return;
                var diff = golden.AssertClose(name, actual);
                var tolerance = golden.Tolerance(name);
                if (tolerance > 0) worstRatio = Math.Max(worstRatio, diff / tolerance);
                compared.Add(name);
                if (name is "final_latents" or "vae_decode_output" or "prompt_embeds")
                    output.WriteLine($"{caseName} {name}: max abs diff {diff:G3} (tolerance {tolerance:G3})");
            },
        };
        var request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? stored : null };

        using var result = StableDiffusionPipeline.Generate(model, request, observer);

        int steps = request.Steps;
        Assert.Contains("prompt_embeds", compared);
        Assert.Contains("negative_prompt_embeds", compared);
        Assert.Contains("initial_latents", compared);
        Assert.Contains($"step{steps - 1:D2}_latents", compared);
        Assert.Contains("vae_decode_output", compared);
        Assert.Equal(golden.Tensor("timesteps").to(ScalarType.Float64).data<double>().ToArray(), result.Timesteps.ToArray());
        if (injectStoredNoise) Assert.True(stored.Drawn > 0);

        // The final image is within 2 levels of diffusers' expected.png (rounding flips float64 vs float32 shows too).
        var image = Assert.Single(SDImage.FromTensorBatch(result.Images));
        var expected = SDImage.Load(Path.Combine(golden.Folder, "expected.png"));
        int worstLevel = ModelSourceTestSupport.MaxLevelDifference(expected, image);
        output.WriteLine($"{caseName}: final image max difference {worstLevel} level(s)");
        Assert.True(worstLevel <= 2, $"{caseName}: image differs from expected.png by {worstLevel} levels");
        output.WriteLine($"{caseName}: {compared.Count} tensors compared, worst diff/tolerance {worstRatio:F3}");
    }
}
