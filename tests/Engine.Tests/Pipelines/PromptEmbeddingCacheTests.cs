using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Text;
using PSStableDiffusion.Engine.Tests.Lora;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>The model's cache of text embeddings: a repeated prompt is not encoded again and gives the same bits.</summary>
public class PromptEmbeddingCacheTests
{
    [Fact]
    public void ASecondCallWithTheSamePromptsReusesTheirEmbeddingsBitForBit()
    {
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        var request = new GenerationRequest { Prompt = "a red bicycle", NegativePrompt = "blurry", Steps = 2, Seed = 3 };
        var logs = new List<string>();
        var embeds = new List<Tensor>();
        var observer = new PipelineObserver
        {
            Log = logs.Add,
            Inspect = (name, t) => { if (name is "prompt_embeds" or "negative_prompt_embeds") embeds.Add(t.clone().DetachFromDisposeScope()); },
        };

        using var first = StableDiffusionPipeline.Generate(model, request, observer);
        using var second = StableDiffusionPipeline.Generate(model, request, observer);
        using var otherNegative = StableDiffusionPipeline.Generate(model, request with { NegativePrompt = "dark" }, observer);

        var encoded = logs.Where(line => line.StartsWith("Encoded the prompt", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, encoded.Count);
        Assert.DoesNotContain("cache", encoded[0]);
        Assert.EndsWith("(both from the model's embedding cache).", encoded[1]);
        Assert.EndsWith("(the prompt's from the model's embedding cache).", encoded[2]);
        Assert.Equal(3, model.PromptEncoder.CachedCount);
        // prompt, negative of the first call == those of the second, bit for bit; and so the images.
        Assert.Equal(6, embeds.Count);
        Assert.True(embeds[0].equal(embeds[2]).all().item<bool>());
        Assert.True(embeds[1].equal(embeds[3]).all().item<bool>());
        Assert.True(first.Images.equal(second.Images).all().item<bool>());
        Assert.False(embeds[3].equal(embeds[5]).all().item<bool>()); // "blurry" vs "dark"
        foreach (var tensor in embeds) tensor.Dispose();
    }

    /// <summary>
    /// The cache keys entries by the text encoder's LoRA state: under a LoRA a repeated prompt is a hit with the LoRA's
    /// bits, another multiplier is a miss, and the base entry is neither served meanwhile nor changed afterwards.
    /// </summary>
    [Fact]
    public void EntriesMadeUnderALoraServeOnlyThatLora()
    {
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        var encoder = model.PromptEncoder;
        PromptEmbedding Encode() => encoder.Encode("a red bicycle", PromptSyntax.Automatic1111);
        static bool Same(Tensor a, Tensor b) => a.equal(b).all().item<bool>();

        using var scope = NewDisposeScope();
        var baseline = Encode();
        Assert.False(baseline.FromCache);
        Tensor first, second;
        using (AppliedLoras.Apply(model, LoraFixtures.Requests("mult08")))
        {
            var underLora = Encode();
            var again = Encode();
            Assert.False(underLora.FromCache); // not the base entry
            Assert.True(again.FromCache);
            Assert.True(Same(underLora.Embeds, again.Embeds));
            Assert.False(Same(baseline.Embeds, underLora.Embeds));
            first = underLora.Embeds;
        }
        using (AppliedLoras.Apply(model, LoraFixtures.Requests("te_unet")))
        {
            var otherMultiplier = Encode();
            Assert.False(otherMultiplier.FromCache);
            Assert.False(Same(first, otherMultiplier.Embeds));
        }
        using (AppliedLoras.Apply(model, LoraFixtures.Requests("mult08")))
        {
            var back = Encode();
            Assert.True(back.FromCache);
            second = back.Embeds;
        }
        Assert.True(Same(first, second));
        var after = Encode();
        Assert.True(after.FromCache);
        Assert.True(Same(baseline.Embeds, after.Embeds));
        Assert.Equal(3, encoder.CachedCount);
    }

    [Fact]
    public void KeepsTheMostRecentEntriesAndHandsOutIndependentHandles()
    {
        using var cache = new PromptEmbeddingCache(capacity: 2);
        int encodes = 0;
        Tensor Encode(float value) { encodes++; return torch.empty(new long[] { 1, 77, 4 }).ScalarSafe().Fill(value); }

        using (var a = cache.GetOrAdd(new[] { 1, 2 }, () => Encode(1), out var hitA)) Assert.False(hitA);
        using (var b = cache.GetOrAdd(new[] { 3 }, () => Encode(2), out _)) { }
        using (var again = cache.GetOrAdd(new[] { 1, 2 }, () => Encode(-1), out var hitAgain))
        {
            Assert.True(hitAgain);
            Assert.Equal(1f, again[0, 0, 0].item<float>()); // the disposed first handle did not free the entry
        }
        using (var c = cache.GetOrAdd(new[] { 4 }, () => Encode(3), out _)) { } // evicts [3], the least recently used
        Assert.Equal(2, cache.Count);
        Assert.Equal(3, encodes);
        using (var b = cache.GetOrAdd(new[] { 3 }, () => Encode(4), out var hitB))
        {
            Assert.False(hitB);
            Assert.Equal(4f, b[0, 0, 0].item<float>());
        }
        Assert.Equal(4, encodes);
    }
}
