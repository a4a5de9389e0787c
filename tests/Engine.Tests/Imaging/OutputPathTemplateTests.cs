using PSStableDiffusion.Engine.Imaging;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Imaging;

public class OutputPathTemplateTests
{
    private static SDImage ImageWithPrompt(string prompt) =>
        new(8, 8, new byte[8 * 8 * 3], new GenerationRecord { Prompt = prompt, Seed = 5, Width = 8, Height = 8 });

    private static string Expand(string template, string prompt) =>
        OutputPathTemplate.Expand(template, ImageWithPrompt(prompt), DateTimeOffset.UnixEpoch);

    [Theory]
    [InlineData("CON", "out/_CON.png")]
    [InlineData("nul", "out/_nul.png")]
    [InlineData("Com1", "out/_Com1.png")]
    [InlineData("lpt9", "out/_lpt9.png")]
    [InlineData("aux ", "out/_aux.png")] // trimmed to "aux", then reserved
    [InlineData("conin$", "out/_conin$.png")]
    public void AReservedWindowsNameFromATokenGetsAPrefix(string prompt, string expected) =>
        Assert.Equal(expected, Expand("out/{Prompt}.png", prompt));

    [Fact]
    public void AReservedNameWithAnExtensionOrAsAFolderGetsAPrefixToo()
    {
        Assert.Equal("out/_prn.tar.png", Expand("out/{Prompt}.tar.png", "prn"));
        Assert.Equal("out/_con/5.png", Expand("out/{Prompt}/{Seed}.png", "con"));
        Assert.Equal(@"out\_con\5.png", Expand(@"out\{Prompt}\{Seed}.png", "con"));
    }

    [Theory]
    [InlineData("console")]
    [InlineData("com10")]
    [InlineData("a con")]
    [InlineData("connie")]
    public void NamesThatOnlyLookReservedAreKept(string prompt) =>
        Assert.Equal($"out/{prompt}.png", Expand("out/{Prompt}.png", prompt));

    [Fact]
    public void AReservedNameTypedLiterallyInTheTemplateIsTheUsersChoice() =>
        Assert.Equal("NUL/5.png", Expand("NUL/{Seed}.png", "x"));
}
