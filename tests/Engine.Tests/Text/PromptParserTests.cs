using System.Text.Json;
using PSStableDiffusion.Engine.Tests.Support;
using PSStableDiffusion.Engine.Text;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Text;

/// <summary>Against tests/golden/prompts/parser.json: AUTOMATIC1111's parse_prompt_attention, checked there against
/// its doctests and diffusers' runnable copy.</summary>
public sealed class PromptParserTests
{
    private static readonly Lazy<JsonElement[]> Cases = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.Path("prompts", "parser.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToArray();
    });

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Value.Length; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void FixtureHoldsTheDoctestsAndFortyPrompts()
    {
        Assert.True(Cases.Value.Length >= 40);
        Assert.Equal("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", Cases.Value[5].GetProperty("prompt").GetString());
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void ParsesAsAutomatic1111(int index)
    {
        var c = Cases.Value[index];
        string prompt = c.GetProperty("prompt").GetString()!;
        if (c.TryGetProperty("error", out var error))
        {
            var e = Assert.Throws<PromptSyntaxException>(() => PromptParser.Parse(prompt));
            Assert.Equal(prompt, e.Prompt);
            Assert.Contains("not a number", e.Message);
            Assert.StartsWith("ValueError", error.GetString());
            return;
        }
        var expected = c.GetProperty("fragments").EnumerateArray()
            .Select(f => new PromptFragment(f[0].GetString()!, f[1].GetDouble())).ToArray();
        var actual = PromptParser.Parse(prompt).ToArray();
        // Weights are compared exactly: the reference's products of doubles, repeated in its order, are the same
        // bits, and the merging of neighbours depends on exact equality anyway.
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void BreakMarkerIsABreakOnlyAtWeightMinusOne()
    {
        var parsed = PromptParser.Parse("a BREAK b");
        Assert.True(parsed[1].IsBreak);
        Assert.False(PromptParser.Parse("(a BREAK b:1.5)")[1].IsBreak); // A1111 then reads it as the word
    }
}
