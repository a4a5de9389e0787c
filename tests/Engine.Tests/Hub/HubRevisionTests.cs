using PSStableDiffusion.Engine.Hub;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Hub;

public class HubRevisionTests
{
    [Theory]
    [InlineData("C:x")] // on Windows a drive-relative path: out of the cache folder
    [InlineData("main:stream")] // on NTFS an alternate data stream of "main"
    [InlineData("refs/pr/1:")]
    public void ARevisionWithAColonIsRefused(string revision)
    {
        var e = Assert.Throws<ArgumentException>(() => HubCache.ValidateRevision(revision));
        Assert.Contains($"'{revision}'", e.Message);
    }

    [Theory]
    [InlineData("main")]
    [InlineData("refs/pr/1")]
    [InlineData("v1.0")]
    [InlineData("5a8b2f0e3c1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f")]
    public void BranchesTagsAndCommitsAreAccepted(string revision) => HubCache.ValidateRevision(revision);
}
