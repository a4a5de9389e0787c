using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>
/// Each LoRA case against diffusers 0.29.2 run on weights merged in PyTorch (W + multiplier × alpha/rank × up @ down):
/// prompt embeddings, initial and final latents, and the image, within the tolerances cases.json states (the golden
/// rule: 50× this call's own float64 difference, or the base case's where no float64 twin was run).
/// </summary>
public class LoraGoldenTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    public static TheoryData<string> CaseNames => new() { "mult08", "two_loras", "te_unet", "inpaint_conv_in" };

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void ImagesMatchDiffusersOnMergedWeights(string caseName)
    {
        var entry = LoraFixtures.Case(caseName);
        var baseCase = entry.GetProperty("base_case").GetString()!;
        using var golden = Golden.Case(baseCase);
        using var io = LoraFixtures.Io();
        var model = models.Get(baseCase);
        var tolerances = entry.GetProperty("tolerances");
        var compared = new List<string>();
        var observer = new PipelineObserver
        {
            Inspect = (name, actual) =>
            {
                var key = $"{caseName}/{name}";
                if (!io.Tensors.ContainsKey(key) || !tolerances.TryGetProperty(name, out var t)) return;
                using var expected = io.Read(key);
                var diff = Golden.AssertClose(expected, actual, t.GetProperty("max_abs").GetDouble(), key);
                output.WriteLine($"{key}: max abs diff {diff:G3} (tolerance {t.GetProperty("max_abs").GetDouble():G3})");
                compared.Add(name);
            },
        };
        var request = GoldenRequests.For(golden) with { Loras = LoraFixtures.Requests(caseName) };

        using var result = StableDiffusionPipeline.Generate(model, request, observer);

        foreach (var name in new[] { "prompt_embeds", "negative_prompt_embeds", "initial_latents", "final_latents" })
            Assert.Contains(name, compared);
        var image = Assert.Single(SDImage.FromTensorBatch(result.Images));
        var expectedImage = SDImage.Load(LoraFixtures.Path(caseName + ".png"));
        int levels = ModelSources.ModelSourceTestSupport.MaxLevelDifference(expectedImage, image);
        var allowed = tolerances.GetProperty("image_uint8").GetProperty("max_abs").GetInt32();
        output.WriteLine($"{caseName}: image max difference {levels} level(s) (tolerance {allowed})");
        Assert.True(levels <= allowed, $"{caseName}: image differs from diffusers' by {levels} levels");
    }

    [Fact]
    public void BaseWeightsAreExactlyBackAfterTheCallAndTheCacheIsNotPoisoned()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var snapshot = LoraFixtures.Snapshot(model);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var plain = GoldenRequests.For(golden);
        using (StableDiffusionPipeline.Generate(model, plain)) { } // fills the prompt cache with the base embeddings

        using (StableDiffusionPipeline.Generate(model, plain with { Loras = LoraFixtures.Requests("mult08") })) { }
        int compared = LoraFixtures.AssertUnchanged(model, snapshot);
        using var after = StableDiffusionPipeline.Generate(model, plain);

        // The call after is diffusers' base image again (cached embeddings from before the LoRA call are still right).
        var image = Assert.Single(SDImage.FromTensorBatch(after.Images));
        var expected = SDImage.Load(Path.Combine(golden.Folder, "expected.png"));
        Assert.True(ModelSources.ModelSourceTestSupport.MaxLevelDifference(expected, image) <= 1);
        output.WriteLine($"{compared} weights equal to their values before the LoRA call");
    }

    [Fact]
    public void CancelledCallPutsTheBaseWeightsBack()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var snapshot = LoraFixtures.Snapshot(model);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        using var cancellation = new CancellationTokenSource();
        var observer = new PipelineObserver
        {
            Cancellation = cancellation.Token,
            Progress = p => { if (p.Step == 2) cancellation.Cancel(); },
        };
        var request = GoldenRequests.For(golden) with { Loras = LoraFixtures.Requests("two_loras") };

        Assert.ThrowsAny<OperationCanceledException>(() => StableDiffusionPipeline.Generate(model, request, observer));
        LoraFixtures.AssertUnchanged(model, snapshot);
    }
}
