using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Tests.Support;
using PSStableDiffusion.Engine.Text;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Text;

/// <summary>Against tests/golden/prompts/embeddings.*: AUTOMATIC1111's SD 2.x chunking, comma backtracking, BREAK and
/// "Original" emphasis over the golden tiny text encoder (cross-checked there with diffusers' lpw pipeline).</summary>
public sealed class PromptChunkingTests
{
    private static readonly Lazy<ClipTokenizer> Tokenizer = new(() => ClipTokenizer.FromFolder(Golden.Path("txt2img_v", "model", "tokenizer")));

    // One load for all cases: the theory's cases run one after another (one test class = one xunit collection).
    private static readonly Lazy<CLIPTextModel> Encoder = new(() =>
        CLIPTextModel.FromPretrained(Golden.Path("text_encoder", "text_encoder"), ScalarType.Float32, CPU));

    private static readonly Lazy<JsonElement[]> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.Path("prompts", "embeddings.json")));
        // Cases with their own "text_encoder" were made with the pipeline cases' encoder (PromptSyntaxPipelineTests).
        return doc.RootElement.GetProperty("cases").EnumerateArray().Where(c => !c.TryGetProperty("text_encoder", out _))
            .Select(c => c.Clone()).ToArray();
    });

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Value.Length; i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void ChunksAsAutomatic1111(int index)
    {
        var c = Cases.Value[index];
        var chunks = new PromptChunker(Tokenizer.Value).Split(c.GetProperty("prompt").GetString()!).Chunks;
        var expected = c.GetProperty("chunks").EnumerateArray().ToArray();
        Assert.Equal(expected.Length, chunks.Count);
        for (int k = 0; k < chunks.Count; k++)
        {
            Assert.Equal(expected[k].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), chunks[k].Ids);
            Assert.Equal(expected[k].GetProperty("weights").EnumerateArray().Select(e => (float)e.GetDouble()), chunks[k].Weights);
        }
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void EmbeddingsMatchTheReference(int index)
    {
        var c = Cases.Value[index];
        var encoder = Encoder.Value; // outside the scope, which would otherwise own the shared weights
        using var scope = NewDisposeScope();
        using var io = SafeTensorsFile.Open(Golden.Path("prompts", "embeddings.safetensors"));
        var chunks = new PromptChunker(Tokenizer.Value).Split(c.GetProperty("prompt").GetString()!).Chunks;
        using var _ = torch.no_grad();
        var z = ChunkedPromptEncoding.Encode(chunks, ids =>
            encoder.forward(tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length })).LastHiddenState); // [1, 77·k, D]
        string name = c.GetProperty("name").GetString()!;
        Golden.AssertClose(io.Read(name), z, c.GetProperty("tolerance_max_abs").GetDouble(), $"prompts/{name}");
    }

    [Fact]
    public void PlainShortPromptGivesTheTokenizersIds()
    {
        // The unchanged case: no syntax, at most 75 tokens → exactly the ids the pipeline's tokenizer gives today.
        var tokenizer = Tokenizer.Value;
        foreach (var prompt in new[] { "a photograph of an astronaut riding a horse", "", "A painting of a FOX, 4k!" })
        {
            var chunks = new PromptChunker(tokenizer).Split(prompt).Chunks;
            Assert.Equal(tokenizer.Encode(prompt), Assert.Single(chunks).Ids);
            Assert.False(chunks[0].IsWeighted);
        }
    }

    [Fact]
    public void TenThousandTokensAreRefusedBeforeAnyEncoding()
    {
        string prompt = string.Join(' ', Enumerable.Repeat("cat", 10_000));
        var e = Assert.Throws<PromptTooLongException>(() => new PromptChunker(Tokenizer.Value).Split(prompt));
        Assert.Equal(10_000, e.TokenCount);
        Assert.Equal(PromptChunker.MaxChunks * PromptChunker.ChunkLength, e.MaxTokens);
    }
}
