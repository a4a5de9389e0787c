using System.Text.Json;
using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Networks;
using PSStableDiffusion.Engine.Tests.Support;
using PSStableDiffusion.Engine.Text;
using PSStableDiffusion.Engine.Text.Embeddings;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Text;

/// <summary>Against tests/golden/textual_inversion (make_textual_inversion.py): embedding files read as diffusers'
/// load_textual_inversion reads them, placed in prompts as AUTOMATIC1111 places them, encoded as both do.</summary>
public sealed class TextualInversionTests
{
    private const int Width = 8; // the golden tiny text encoder's hidden size
    private static string Files => Golden.Path("textual_inversion", "files");
    private static string Bad(string name) => Golden.Path("textual_inversion", "bad", name);
    private static readonly string ModelFolder = Golden.Path("txt2img_eps_dpmpp", "model");

    private static readonly Lazy<ClipTokenizer> Tokenizer = new(() => ClipTokenizer.FromFolder(Path.Combine(ModelFolder, "tokenizer")));
    private static readonly Lazy<CLIPTextModel> Encoder = new(() => CLIPTextModel.FromPretrained(ModelFolder, ScalarType.Float32, CPU));

    private static readonly Lazy<JsonElement> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Golden.Path("textual_inversion", "prompts.json"))).RootElement.Clone());

    private static EmbeddingLibrary Library(params string[] paths) =>
        new(EmbeddingLibrary.FindFiles(paths.Length == 0 ? [Files] : paths, _ => null), Tokenizer.Value, Width);

    public static TheoryData<string> FileNames()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Golden.Path("textual_inversion", "files")).Select(Path.GetFileName).Order(StringComparer.Ordinal)) data.Add(f!);
        return data;
    }

    public static TheoryData<string> PromptCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Fixture.Value.GetProperty("cases").EnumerateArray()) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    private static JsonElement Case(string name) =>
        Fixture.Value.GetProperty("cases").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    [Theory]
    [MemberData(nameof(FileNames))]
    public void ReadsEachFormatAsDiffusersLoadsIt(string fileName)
    {
        using var embedding = EmbeddingFile.Read(Path.Combine(Files, fileName));
        using var vectors = SafeTensorsFile.Open(Golden.Path("textual_inversion", "vectors.safetensors"));
        var name = Path.GetFileNameWithoutExtension(fileName);
        Assert.Equal(name, embedding.Name);
        Golden.AssertClose(vectors.Read(name), embedding.Vectors, 0.0, fileName); // the same float32 bits
        Assert.Equal(Fixture.Value.GetProperty("files_sha256").GetProperty(fileName).GetString(), embedding.Sha256);
        Assert.Equal(embedding.Sha256[..12], embedding.ShortHash);
    }

    [Theory]
    [MemberData(nameof(PromptCases))]
    public void PlacesEmbeddingsAsAutomatic1111(string caseName)
    {
        var c = Case(caseName);
        using var library = Library();
        var chunks = new PromptChunker(Tokenizer.Value).Split(c.GetProperty("prompt").GetString()!, library).Chunks;
        var expected = c.GetProperty("chunks").EnumerateArray().ToArray();
        Assert.Equal(expected.Length, chunks.Count);
        for (int k = 0; k < chunks.Count; k++)
        {
            Assert.Equal(expected[k].GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()), chunks[k].Ids);
            Assert.Equal(expected[k].GetProperty("weights").EnumerateArray().Select(e => (float)e.GetDouble()), chunks[k].Weights);
            // A1111's fix offsets count from after BOS.
            Assert.Equal(expected[k].GetProperty("fixes").EnumerateArray().Select(f => (f[0].GetInt32() + 1, f[1].GetString())),
                chunks[k].Embeddings.Select(e => (e.Start, (string?)e.Embedding.Name)));
        }
    }

    [Theory]
    [MemberData(nameof(PromptCases))]
    public void EncodesAsTheReference(string caseName)
    {
        var c = Case(caseName);
        var encoder = Encoder.Value;
        using var library = Library();
        using var promptEncoder = new PromptEncoder(Tokenizer.Value, encoder, CPU);
        using var io = SafeTensorsFile.Open(Golden.Path("textual_inversion", "prompts.safetensors"));
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var z = promptEncoder.Encode(c.GetProperty("prompt").GetString()!, PromptSyntax.Automatic1111, null, library).Embeds; // [1, 77·k, D]
        Golden.AssertClose(io.Read(caseName), z, c.GetProperty("tolerance_max_abs").GetDouble(), $"textual_inversion/{caseName}");
    }

    [Fact]
    public void TheTokenTableIsNotChangedAndTheCacheTellsEmbeddingsFromTheirPlaceholders()
    {
        var encoder = Encoder.Value;
        using var library = Library();
        using var promptEncoder = new PromptEncoder(Tokenizer.Value, encoder, CPU);
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var ids = tensor(new long[] { 0, 320, 1125 }, new long[] { 1, 3 });
        var before = encoder.EmbedTokens(ids).clone();                                                 // [1, 3, D]
        const string prompt = "a photo of concept on a hill";
        var with = promptEncoder.Encode(prompt, PromptSyntax.Automatic1111, null, library).Embeds;
        var without = promptEncoder.Encode(prompt, PromptSyntax.Automatic1111, null, null).Embeds;
        // '!' is id 0, the placeholder id: the same ids with and without the embedding must not share a cache entry.
        var placeholders = promptEncoder.Encode("a photo of ! on a hill", PromptSyntax.Automatic1111, null, null);
        Assert.False(placeholders.FromCache);
        Assert.True(encoder.EmbedTokens(ids).equal(before).all().item<bool>());
        Assert.False(with.equal(without).all().item<bool>());
        Assert.False(with.equal(placeholders.Embeds).all().item<bool>());
        Assert.Equal("concept", Assert.Single(library.Used).Name);
    }

    [Fact]
    public void AnSd1EmbeddingIsRefusedNamingItsFileWhenAPromptUsesIt()
    {
        using var library = Library(Bad("sd15-style.safetensors"));
        var chunker = new PromptChunker(Tokenizer.Value);
        Assert.Single(chunker.Split("a mountain", library).Chunks); // present but unused: no error
        var e = Assert.Throws<EmbeddingWidthException>(() => chunker.Split("a sd15-style mountain", library));
        Assert.Equal((768, Width), (e.Width, e.Expected));
        Assert.Contains("sd15-style.safetensors", e.Message);
    }

    [Fact]
    public void APickleThatCallsAGlobalIsRefusedWithoutRunningIt()
    {
        var e = Assert.Throws<UnsafeCheckpointException>(() => EmbeddingFile.Read(Bad("calls-global.pt")));
        Assert.Equal("posix.system", e.RefusedGlobal);
    }

    [Theory]
    [InlineData("truncated.pt", "zip")]
    [InlineData("two-terms.pt", "2 terms")]
    [InlineData("two-tensors.safetensors", "2 tensors")]
    public void DamagedOrAmbiguousFilesAreRefusedNamingTheFile(string fileName, string reason)
    {
        var e = Assert.Throws<EmbeddingFormatException>(() => EmbeddingFile.Read(Bad(fileName)));
        Assert.Equal(Bad(fileName), e.FilePath);
        Assert.Contains(fileName, e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void AReplayNamesTheEmbeddingItCannotFind()
    {
        using var library = Library();
        new PromptChunker(Tokenizer.Value).Split("concept", library);
        var warnings = new List<string>();
        var used = EmbeddingUse.Finish(library, new Dictionary<string, string> { ["concept"] = "000000000000" }, null, warnings.Add);
        Assert.Equal("concept", Assert.Single(used).Name);
        Assert.Contains("another version", Assert.Single(warnings));
        var e = Assert.Throws<EmbeddingNotFoundException>(() =>
            EmbeddingUse.Finish(library, new Dictionary<string, string> { ["gone-style"] = "abcdef012345" }, null, null));
        Assert.Equal("gone-style", e.Name);
        Assert.Contains("abcdef012345", e.Message);
    }
}
