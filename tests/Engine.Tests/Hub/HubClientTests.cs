using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Hub;

public sealed class HubClientTests : IDisposable
{
    private const string Repo = "stabilityai/tiny-sd21-v";
    private readonly TempFolder _temp = new("hub-tests-");

    public void Dispose() => _temp.Dispose();

    /// <summary>The golden txt2img_v model folder as a hub repository, plus files a pipeline download must skip.</summary>
    private static Dictionary<string, byte[]> RepoFiles(bool withFp16 = false)
    {
        var folder = Golden.Case("txt2img_v").ModelFolder;
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);
        files["README.md"] = "# tiny"u8.ToArray();
        files["v2-1_768-ema-pruned.ckpt"] = new byte[1000];
        files["unet/diffusion_pytorch_model.bin"] = new byte[3000];
        files["unet/diffusion_flax_model.msgpack"] = new byte[100];
        files["safety_checker/config.json"] = "{}"u8.ToArray();
        if (withFp16) files["unet/diffusion_pytorch_model.fp16.safetensors"] = Enumerable.Range(0, 5000).Select(i => (byte)(i * 7)).ToArray();
        return files;
    }

    private static readonly string[] Expected =
    {
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json", "text_encoder/model.safetensors",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    };

    private HubClient Client(FakeHubServer server, bool offline = false, string? token = null) =>
        new(new HubOptions { Endpoint = server.Endpoint, CacheRoot = _temp.Path, Offline = offline, Token = token });

    private string RepoFolder => Path.Combine(_temp.Path, "models--stabilityai--tiny-sd21-v");

    private static List<string> SnapshotListing(string snapshot) =>
        Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();

    [Fact]
    public void FreshDownload_FetchesOnlyNeededFiles_InHuggingFaceLayout()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Repo, files);
        var reports = new List<HubProgress>();
        using var client = Client(server);

        var snapshot = client.Download(Repo, progress: new SyncProgress(reports.Add));

        Assert.Equal(Path.Combine(RepoFolder, "snapshots", server.Commit), snapshot);
        Assert.Equal(Expected, SnapshotListing(snapshot));
        Assert.Equal(server.Commit, File.ReadAllText(Path.Combine(RepoFolder, "refs", "main")));
        foreach (var path in Expected)
        {
            var local = Path.Combine(snapshot, path);
            Assert.Equal(files[path], File.ReadAllBytes(local));
            var etag = FakeHubServer.EtagOf(path, files[path]);
            var target = new FileInfo(local).LinkTarget;
            if (target is not null) // symlinks where the OS allows them, like huggingface_hub
                Assert.Equal(Path.GetRelativePath(Path.GetDirectoryName(local)!, Path.Combine(RepoFolder, "blobs", etag)), target);
            Assert.True(File.Exists(Path.Combine(RepoFolder, "blobs", etag)), $"blob of {path}");
        }
        if (!OperatingSystem.IsWindows()) Assert.Equal("../../../blobs/" + FakeHubServer.Sha256(files["unet/diffusion_pytorch_model.safetensors"]),
            new FileInfo(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.safetensors")).LinkTarget);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(RepoFolder, "blobs"), "*.incomplete"));

        var requested = server.Requests.Select(r => r.Target).ToList();
        Assert.DoesNotContain(requested, t => t.Contains(".bin") || t.Contains("README") || t.Contains(".ckpt") || t.Contains("safety_checker") || t.Contains("msgpack"));
        Assert.All(server.Requests, r => Assert.Equal("identity", r.AcceptEncoding));
        // One HEAD per file for its size and etag, and for each LFS file one more right before its download, since
        // the CDN link it redirects to expires.
        Assert.Equal(Expected.Length + Expected.Count(FakeHubServer.IsLfs), server.Requests.Count(r => r.Method == "HEAD"));
        Assert.Equal("GET", server.Requests.First().Method);
        Assert.StartsWith("/api/models/", server.Requests.First().Target);

        long total = Expected.Sum(p => (long)files[p].Length);
        Assert.NotEmpty(reports);
        Assert.Equal(total, reports[^1].BytesDone);
        Assert.All(reports, r => Assert.True(r.BytesDone <= r.BytesTotal || r.File == "model_index.json"));
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second.BytesDone >= p.First.BytesDone));
    }

    [Fact]
    public void SecondCall_MakesOneRequestForABranch_AndNoneForACommitOrOffline()
    {
        using var server = new FakeHubServer(Repo, RepoFiles());
        using (var client = Client(server)) client.Download(Repo);
        int before = server.Requests.Count;

        using (var client = Client(server)) client.Download(Repo);
        Assert.Equal(before + 1, server.Requests.Count);
        Assert.StartsWith("/api/models/", server.Requests.Last().Target);

        using (var client = Client(server)) client.Download(Repo, revision: server.Commit);
        Assert.Equal(before + 1, server.Requests.Count);

        using (var offline = Client(server, offline: true))
            Assert.Equal(Path.Combine(RepoFolder, "snapshots", server.Commit), offline.Download(Repo));
        Assert.Equal(before + 1, server.Requests.Count);
    }

    [Fact]
    public void Offline_WithoutCache_SaysWhatIsMissing_AndMakesNoRequest()
    {
        using var server = new FakeHubServer(Repo, RepoFiles());
        using var client = Client(server, offline: true);
        var error = Assert.Throws<HubOfflineException>(() => client.Download(Repo));
        Assert.Contains("HF_HUB_OFFLINE", error.Message);
        Assert.Contains(Repo, error.Message);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void ConnectionCutMidFile_IsResumedWithRange()
    {
        var files = RepoFiles();
        const string big = "unet/diffusion_pytorch_model.safetensors";
        using var server = new FakeHubServer(Repo, files);
        server.CutAfter[big] = 100_000;
        using var client = Client(server);

        var snapshot = client.Download(Repo);

        Assert.Equal(files[big], File.ReadAllBytes(Path.Combine(snapshot, big)));
        var sha = FakeHubServer.Sha256(files[big]);
        var gets = server.Requests.Where(r => r.Method == "GET" && r.Target.StartsWith("/cdn/" + sha, StringComparison.Ordinal)).ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Range);
        Assert.Equal("bytes=100000-", gets[1].Range);
    }

    [Fact]
    public void PartialFileFromEarlierRun_IsResumed()
    {
        var files = RepoFiles();
        const string big = "vae/diffusion_pytorch_model.safetensors";
        var sha = FakeHubServer.Sha256(files[big]);
        Directory.CreateDirectory(Path.Combine(RepoFolder, "blobs"));
        File.WriteAllBytes(Path.Combine(RepoFolder, "blobs", sha + ".incomplete"), files[big][..12345]);
        using var server = new FakeHubServer(Repo, files);
        using var client = Client(server);

        var snapshot = client.Download(Repo);

        Assert.Equal(files[big], File.ReadAllBytes(Path.Combine(snapshot, big)));
        var get = Assert.Single(server.Requests, r => r.Method == "GET" && r.Target.StartsWith("/cdn/" + sha, StringComparison.Ordinal));
        Assert.Equal("bytes=12345-", get.Range);
    }

    [Fact]
    public void ChecksumMismatch_IsRefused_AndNothingEntersTheCache()
    {
        var files = RepoFiles();
        const string bad = "text_encoder/model.safetensors";
        using var server = new FakeHubServer(Repo, files);
        server.Corrupt.Add(bad);
        using var client = Client(server);

        var error = Assert.Throws<HubChecksumException>(() => client.Download(Repo));

        Assert.Contains(bad, error.Message);
        var sha = FakeHubServer.Sha256(files[bad]);
        Assert.Contains(sha, error.Message);
        var blobs = Path.Combine(RepoFolder, "blobs");
        Assert.False(File.Exists(Path.Combine(blobs, sha)));
        Assert.Empty(Directory.EnumerateFiles(blobs, "*.incomplete"));
        Assert.DoesNotContain(Directory.EnumerateFiles(blobs), f => FakeHubServer.Sha256(File.ReadAllBytes(f)) != Path.GetFileName(f) && Path.GetFileName(f).Length == 64);
        Assert.False(File.Exists(Path.Combine(RepoFolder, "snapshots", server.Commit, "text_encoder", "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")));
    }

    [Fact]
    public void Unauthorized_WithoutToken_ThenSucceedsWithOne()
    {
        using var server = new FakeHubServer(Repo, RepoFiles()) { RequiredToken = "hf_secret" };
        using (var anonymous = Client(server))
        {
            var error = Assert.Throws<HubAuthenticationException>(() => anonymous.Download(Repo));
            Assert.Contains("HF_TOKEN", error.Message);
            Assert.Contains("pass a token", error.Message);
            Assert.DoesNotContain("-Token", error.Message); // the cmdlets word the parameter
        }
        using var client = Client(server);
        var snapshot = client.Download(Repo, token: "hf_secret");
        Assert.Equal(Expected, SnapshotListing(snapshot));
        Assert.All(server.Requests.Where(r => !r.Target.StartsWith("/cdn/", StringComparison.Ordinal)).Skip(1),
            r => Assert.Equal("Bearer hf_secret", r.Authorization));
    }

    [Fact]
    public void GatedAndNotFound_ExplainWhatToDo()
    {
        using var server = new FakeHubServer(Repo, RepoFiles()) { ForcedError = (403, "GatedRepo") };
        using var client = Client(server, token: "hf_x");
        var gated = Assert.Throws<HubAccessDeniedException>(() => client.Download(Repo));
        Assert.Contains("accept its licence", gated.Message);

        server.ForcedError = (404, "RepoNotFound");
        var missing = Assert.Throws<HubNotFoundException>(() => client.Download(Repo));
        Assert.Contains("check the id", missing.Message);

        server.ForcedError = null;
        var revision = Assert.Throws<HubNotFoundException>(() => client.Download(Repo, revision: "no-such-branch"));
        Assert.Contains("no-such-branch", revision.Message);
    }

    [Fact]
    public void Fp16Variant_TakesFp16Weights_AndFallsBackWhereMissing()
    {
        var files = RepoFiles(withFp16: true);
        using var server = new FakeHubServer(Repo, files);
        using var client = Client(server);

        var snapshot = client.Download(Repo, variant: "fp16");

        var listing = SnapshotListing(snapshot);
        Assert.Contains("unet/diffusion_pytorch_model.fp16.safetensors", listing);
        Assert.DoesNotContain("unet/diffusion_pytorch_model.safetensors", listing);
        Assert.Contains("text_encoder/model.safetensors", listing);
        Assert.Equal(files["unet/diffusion_pytorch_model.fp16.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.fp16.safetensors")));
    }

    [Fact]
    public void Cancellation_StopsBetweenChunks_AndKeepsThePartialFile()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Repo, files);
        using var client = Client(server);
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.File == "unet/diffusion_pytorch_model.safetensors" && p.FileBytesDone > 0) cts.Cancel(); });

        Assert.ThrowsAny<OperationCanceledException>(() => client.Download(Repo, progress: progress, cancellation: cts.Token));

        Assert.False(File.Exists(Path.Combine(RepoFolder, "refs", "main")));
        var sha = FakeHubServer.Sha256(files["unet/diffusion_pytorch_model.safetensors"]);
        Assert.True(File.Exists(Path.Combine(RepoFolder, "blobs", sha + ".incomplete")));
    }

    [Fact]
    public void CacheRoot_FollowsHuggingFaceHubRules()
    {
        string? Env(Dictionary<string, string> vars, string name) => vars.GetValueOrDefault(name);
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        Assert.Equal("/x/hub-cache", HubOptions.ResolveCacheRoot(n => Env(new() { ["HF_HUB_CACHE"] = "/x/hub-cache", ["HF_HOME"] = "/y" }, n)));
        Assert.Equal(Path.Combine("/y", "hub"), HubOptions.ResolveCacheRoot(n => Env(new() { ["HF_HOME"] = "/y" }, n)));
        Assert.Equal(Path.Combine("/xdg", "huggingface", "hub"), HubOptions.ResolveCacheRoot(n => Env(new() { ["XDG_CACHE_HOME"] = "/xdg" }, n)));
        Assert.Equal(Path.Combine(home, ".cache", "huggingface", "hub"), HubOptions.ResolveCacheRoot(_ => null));
        Assert.Equal(Path.Combine(home, "models", "hub"), HubOptions.ResolveCacheRoot(n => Env(new() { ["HF_HOME"] = "~/models" }, n)));

        var options = HubOptions.FromEnvironment(n => Env(new() { ["HF_ENDPOINT"] = "http://mirror/", ["HF_HUB_OFFLINE"] = "1", ["HF_TOKEN"] = "hf_t" }, n));
        Assert.Equal("http://mirror", options.Endpoint);
        Assert.True(options.Offline);
        Assert.Equal("hf_t", options.Token);
    }

    /// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<HubProgress> report) : IProgress<HubProgress>
    {
        public void Report(HubProgress value) => report(value);
    }
}
