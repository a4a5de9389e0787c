using System.Text.Json;
using PSStableDiffusion.Engine.Tests.Support;
using PSStableDiffusion.Engine.Text;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Text;

public sealed class ClipTokenizerTests
{
    private static readonly Lazy<ClipTokenizer> Tokenizer = new(() =>
        ClipTokenizer.FromFolder(Golden.Path("txt2img_v", "model", "tokenizer")));

    private static readonly Lazy<JsonElement[]> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.Path("tokenizer.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    });

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Value.Length; i++) data.Add(i);
        return data;
    }

    private static int[] Ints(JsonElement c, string name) => c.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void MatchesTheHuggingFaceTokenizer(int index)
    {
        var c = Cases.Value[index];
        string prompt = c.GetProperty("prompt").GetString()!;
        var tokenizer = Tokenizer.Value;

        var encoding = tokenizer.EncodeWithInfo(prompt);
        Assert.Equal(Ints(c, "hf_clip_tokenizer_77"), encoding.Ids);
        Assert.Equal(c.GetProperty("truncated").GetBoolean(), encoding.Truncated);
        Assert.Equal(Ints(c, "hf_clip_tokenizer_untruncated"), tokenizer.EncodeUntruncated(prompt));
        var expectedTokens = c.GetProperty("hf_tokens").EnumerateArray().Select(e => e.GetString()!).ToArray();
        Assert.Equal(expectedTokens[1..^1], tokenizer.Tokenize(prompt));
    }

    [Fact]
    public void AllSixtyNineGoldenPromptsAreCovered()
    {
        // Every case, the ftfy-dependent ones included (html entities, mojibake, width, ligatures, quotes, NFC),
        // runs through MatchesTheHuggingFaceTokenizer: none is exempted.
        Assert.Equal(69, Cases.Value.Length);
        var ftfyDependent = Cases.Value.Where(c => c.GetProperty("differences").EnumerateArray()
            .Any(d => d.GetString() == "hf(ftfy) != hf(no ftfy)")).ToArray();
        Assert.Equal(12, ftfyDependent.Length);
    }

    [Theory]
    [InlineData("Straße“ und „Fuß…”")]
    [InlineData("ESPAÑA” não…” Ünïcödé ß° ÀÉÎÕÜ")]
    [InlineData("Ελληνικά, Русский, 日本語")]
    public void MojibakeRepairLeavesOrdinaryTextAlone(string text)
    {
        // Only the quote characters change (ftfy uncurls them); no letter is re-decoded.
        string expected = text.Replace('“', '"').Replace('”', '"').Replace('„', '"');
        Assert.Equal(expected, ClipTextCleaner.FixText(text));
    }

    [Fact]
    public void TruncationKeepsTheEndTokenAndReportsTheDroppedText()
    {
        var tokenizer = Tokenizer.Value;
        string prompt = string.Join(' ', Enumerable.Range(0, 100).Select(i => "cat"));
        var encoding = tokenizer.EncodeWithInfo(prompt);
        Assert.Equal(77, encoding.Ids.Length);
        Assert.Equal(100, encoding.TextTokenCount);
        Assert.True(encoding.Truncated);
        Assert.Equal(tokenizer.EosTokenId, encoding.Ids[76]);
        Assert.Equal(string.Join(' ', Enumerable.Repeat("cat", 25)), encoding.DroppedText);

        var exact = tokenizer.EncodeWithInfo(string.Join(' ', Enumerable.Repeat("cat", 75)));
        Assert.False(exact.Truncated);
        Assert.Equal(tokenizer.EosTokenId, exact.Ids[76]);
    }

    [Fact]
    public void SpecialIdsComeFromTheFolder()
    {
        var tokenizer = Tokenizer.Value;
        Assert.Equal(49406, tokenizer.BosTokenId);
        Assert.Equal(49407, tokenizer.EosTokenId);
        Assert.Equal(0, tokenizer.PadTokenId);
        Assert.Equal(77, tokenizer.ModelMaxLength);
        Assert.Equal(49408, tokenizer.VocabSize);
        var batch = tokenizer.EncodeBatch(["a photo of a cat", ""]);
        Assert.Equal(2, batch.Length);
        Assert.All(batch, ids => Assert.Equal(77, ids.Length));
    }

    [Fact]
    public void DecodeInvertsEncode()
    {
        var tokenizer = Tokenizer.Value;
        var ids = tokenizer.EncodeUntruncated("a photograph of an astronaut, café");
        Assert.Equal("a photograph of an astronaut , café", tokenizer.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void MissingFilesNameThePath()
    {
        using var temp = new TempFolder("tok-");
        var folder = temp.Path;
        var error = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.FromFolder(folder));
        Assert.Contains(Path.Combine(folder, "vocab.json"), error.Message);
    }
}
