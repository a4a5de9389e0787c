using PSStableDiffusion.Engine.Networks;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Networks;

public sealed class NetworkFileLookupTests
{
    private static readonly string[] EmbeddingExtensions = [".pt", ".safetensors", ".bin"];

    private static string Write(TempFolder folder, string relative, int bytes = 4)
    {
        var path = folder.Combine(relative.Split('/'));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, new byte[bytes]);
        return path;
    }

    [Fact]
    public void FindsFilesInFoldersAndSubfoldersByNameWithoutExtensionInAnyCase()
    {
        using var folder = new TempFolder();
        var badPrompt = Write(folder, "neg/bad-prompt.pt");
        var style = Write(folder, "Style.safetensors");
        Write(folder, "notes.txt");
        Write(folder, "empty.pt", bytes: 0);

        var lookup = new NetworkFileLookup([folder.Path], EmbeddingExtensions, "EmbeddingPath");

        Assert.Equal(2, lookup.Files.Count);
        Assert.True(lookup.TryFind("BAD-PROMPT", out var found));
        Assert.Equal(("bad-prompt", badPrompt), (found.Name, found.Path));
        Assert.True(lookup.TryFind("style", out found));
        Assert.Equal(style, found.Path);
        Assert.False(lookup.TryFind("notes", out _));
        Assert.False(lookup.TryFind("empty", out _));
    }

    [Fact]
    public void TheFirstPathGivenWinsAndTheOtherIsReported()
    {
        using var first = new TempFolder();
        using var second = new TempFolder();
        var kept = Write(first, "twin.pt");
        var hidden = Write(second, "twin.safetensors");

        var lookup = new NetworkFileLookup([first.Path, second.Path], EmbeddingExtensions, "EmbeddingPath");

        Assert.True(lookup.TryFind("twin", out var found));
        Assert.Equal(kept, found.Path);
        Assert.Equal(hidden, Assert.Single(lookup.Shadowed).Path);
    }

    [Fact]
    public void ASingleFileIsTakenWhateverItsExtension()
    {
        using var folder = new TempFolder();
        var odd = Write(folder, "my-style.embedding");
        var lookup = new NetworkFileLookup([odd], EmbeddingExtensions, "EmbeddingPath");
        Assert.True(lookup.TryFind("my-style", out var found));
        Assert.Equal(odd, found.Path);
    }

    [Fact]
    public void AMissingPathIsAnErrorNamingItAndTheParameter()
    {
        using var folder = new TempFolder();
        var missing = folder.Combine("nowhere");
        var e = Assert.Throws<NetworkPathNotFoundException>(() => new NetworkFileLookup([missing], EmbeddingExtensions, "EmbeddingPath"));
        Assert.Equal(missing, e.FileName);
        Assert.Equal("EmbeddingPath", e.ParameterName);
        Assert.Contains(missing, e.Message);
    }

    [Fact]
    public void TheEnvironmentVariableAddsFoldersAfterThePathsAndSkipsMissingOnes()
    {
        using var given = new TempFolder();
        using var fromVariable = new TempFolder();
        var kept = Write(given, "shared.pt");
        Write(fromVariable, "shared.pt");
        var extra = Write(fromVariable, "extra.bin");
        var missing = fromVariable.Combine("gone");
        string value = string.Join(Path.PathSeparator, fromVariable.Path, "", missing);

        var lookup = new NetworkFileLookup([given.Path], EmbeddingExtensions, "EmbeddingPath", "SD_EMBEDDINGS",
            name => name == "SD_EMBEDDINGS" ? value : null);

        Assert.True(lookup.TryFind("shared", out var found));
        Assert.Equal(kept, found.Path);
        Assert.True(lookup.TryFind("extra", out found));
        Assert.Equal(extra, found.Path);
        Assert.Equal(missing, Assert.Single(lookup.MissingFromVariable));
    }

    [Fact]
    public void NoPathsAndNoVariableFindNothing()
    {
        var lookup = new NetworkFileLookup(null, EmbeddingExtensions, "EmbeddingPath", "SD_EMBEDDINGS", _ => null);
        Assert.Empty(lookup.Files);
        Assert.Empty(NetworkFileLookup.SplitPathList("  "));
    }
}
