using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Hub;

public sealed class ModelProvenanceTests
{
    private const string Released768 = "dcd690123cfc64383981a31d955694f6acf2072a80537fdb612c8e58ec87a8ac";

    [Fact]
    public void ASingleFileWhoseHashIsAReleaseSum_IsTheRelease_AndAnythingElseIsUnverified()
    {
        Assert.Equal("same weights as Stability AI's release of v2-1_768-ema-pruned.safetensors",
            ModelProvenance.Describe(Released768, "/nowhere/v2-1_768-ema-pruned.safetensors"));
        Assert.Equal("same weights as Stability AI's release of v2-1_768-ema-pruned.safetensors",
            ModelProvenance.Describe(Released768.ToUpperInvariant(), "/nowhere/renamed.safetensors"));
        Assert.Equal(KnownReleases.Unverified, ModelProvenance.Describe(new string('0', 64), "/nowhere/x.safetensors"));
        Assert.Equal(KnownReleases.Unverified, ModelProvenance.Describe(null, "/nowhere"));
    }

    [Fact]
    public void AHubSnapshot_IsJudgedByTheBlobNamesItsFilesLinkTo_WithoutReadingThem()
    {
        using var temp = new TempFolder("provenance-");
        var root = temp.Path;
        var blob = Path.Combine(root, "blobs", Released768);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob, new byte[] { 1, 2, 3 }); // content is not read: the LFS name is the sum
        var snapshot = Path.Combine(root, "snapshots", "c0ffee");
        Directory.CreateDirectory(snapshot);
        File.CreateSymbolicLink(Path.Combine(snapshot, "v2-1_768-ema-pruned.safetensors"), Path.Combine("..", "..", "blobs", Released768));

        Assert.Equal("same weights as Stability AI's release of v2-1_768-ema-pruned.safetensors",
            ModelProvenance.Describe(new string('1', 64), snapshot));
    }

    [Fact]
    public void EveryListedSumIsAFullSha256_OfAnSd2ReleaseFile()
    {
        Assert.All(KnownReleases.All, entry =>
        {
            Assert.Matches("^[0-9a-f]{64}$", entry.Key);
            Assert.Matches(@"^(v2-1_(768|512)-ema-pruned|512-inpainting-ema)\.(safetensors|ckpt)$", entry.Value);
        });
    }

    [Fact]
    public void TheTinyGoldenModel_IsAnUnverifiedCopy()
    {
        var folder = Golden.Case("txt2img_v").ModelFolder;
        var hash = ModelHashCache.HashFiles(Directory.EnumerateFiles(folder, "*.safetensors", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        Assert.Equal(KnownReleases.Unverified, ModelProvenance.Describe(hash, folder));
    }
}
