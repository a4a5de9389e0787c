using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Loading;

/// <summary>The persistent model-hash cache: hit while the files are unchanged, recomputed when one changes, and never
/// an error of its own.</summary>
public sealed class ModelHashCacheTests : IDisposable
{
    private readonly TempFolder _temp = new("sd-hash-cache-");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void SecondLookupOfUnchangedFilesDoesNotRehash()
    {
        var files = WriteFiles(("a.safetensors", "first"), ("b.safetensors", "second"));
        var cache = new ModelHashCache(Path.Combine(_temp.Path, "cache", "model-hashes.json"));
        int computed = 0;
        string Compute() { computed++; return ModelHashCache.HashFiles(files); }

        var first = cache.GetOrCompute(files, Compute);
        var second = new ModelHashCache(cache.FilePath).GetOrCompute(files, Compute); // as a new session would

        Assert.Equal(1, computed);
        Assert.Equal(first, second);
        Assert.True(File.Exists(cache.FilePath));
        // The cached value is the real SHA-256 of the concatenated files (computed independently here).
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData("firstsecond"u8)).ToLowerInvariant();
        Assert.Equal(expected, second);
    }

    [Fact]
    public void AChangedSizeOrTimeStampOrOrderRehashes()
    {
        var files = WriteFiles(("a.safetensors", "first"), ("b.safetensors", "second"));
        var cache = new ModelHashCache(Path.Combine(_temp.Path, "model-hashes.json"));
        int computed = 0;
        string Compute() { computed++; return ModelHashCache.HashFiles(files); }
        cache.GetOrCompute(files, Compute);

        File.SetLastWriteTimeUtc(files[1], File.GetLastWriteTimeUtc(files[1]).AddSeconds(5));
        cache.GetOrCompute(files, Compute);
        Assert.Equal(2, computed);

        File.WriteAllText(files[0], "first, longer");
        var changed = cache.GetOrCompute(files, Compute);
        Assert.Equal(3, computed);
        Assert.Equal(ModelHashCache.HashFiles(files), changed);

        cache.GetOrCompute(files.Reverse().ToArray(), () => { computed++; return "other order"; });
        Assert.Equal(4, computed);
    }

    [Theory]
    [InlineData("not json {")]
    [InlineData("[1, 2, 3]")]
    [InlineData("")]
    public void ACorruptCacheFileIsIgnoredAndReplaced(string content)
    {
        var files = WriteFiles(("model.safetensors", "weights"));
        var path = Path.Combine(_temp.Path, "model-hashes.json");
        File.WriteAllText(path, content);
        var cache = new ModelHashCache(path);

        var hash = cache.GetOrCompute(files, () => ModelHashCache.HashFiles(files));

        Assert.Equal(ModelHashCache.HashFiles(files), hash);
        int computed = 0;
        Assert.Equal(hash, new ModelHashCache(path).GetOrCompute(files, () => { computed++; return "x"; }));
        Assert.Equal(0, computed);
    }

    [Fact]
    public void AnUnwritableCacheLocationStillGivesTheHash()
    {
        var files = WriteFiles(("model.safetensors", "weights"));
        var blocker = Path.Combine(_temp.Path, "a-file");
        File.WriteAllText(blocker, "");
        var cache = new ModelHashCache(Path.Combine(blocker, "model-hashes.json")); // its "folder" is a file

        Assert.Equal(ModelHashCache.HashFiles(files), cache.GetOrCompute(files, () => ModelHashCache.HashFiles(files)));
        Assert.False(File.Exists(cache.FilePath));
    }

    [Fact]
    public void TheDefaultCacheFollowsTheEnvironmentVariable()
    {
        var previous = Environment.GetEnvironmentVariable(ModelHashCache.FolderVariable);
        try
        {
            Environment.SetEnvironmentVariable(ModelHashCache.FolderVariable, _temp.Path);
            Assert.Equal(Path.Combine(_temp.Path, "model-hashes.json"), ModelHashCache.Default.FilePath);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ModelHashCache.FolderVariable, previous);
        }
    }

    [Fact]
    public void ALoraFolderOfHundredsOfFilesStaysCached()
    {
        // A replay looking a LoRA up by its hash hashes every file of the folders: all of them must stay cached.
        var cache = new ModelHashCache(Path.Combine(_temp.Path, "model-hashes.json"));
        var files = WriteFiles(Enumerable.Range(0, 300).Select(i => ($"lora{i}.safetensors", $"lora {i}")).ToArray());
        int computed = 0;
        foreach (var file in files)
            cache.GetOrCompute([file], () => { computed++; return ModelHashCache.HashFiles([file]); }, kind: "lora-a1111");
        foreach (var file in files)
            cache.GetOrCompute([file], () => { computed++; return "again"; }, kind: "lora-a1111");
        Assert.Equal(files.Length, computed);
    }

    private string[] WriteFiles(params (string Name, string Content)[] files) =>
        files.Select(f =>
        {
            var path = Path.Combine(_temp.Path, f.Name);
            File.WriteAllText(path, f.Content);
            return path;
        }).ToArray();
}
