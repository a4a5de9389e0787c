using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Hub;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

/// <summary>
/// A hub id through <see cref="ModelStore"/> against a local fake hub: downloaded into a hub-cache layout, loaded as a
/// folder, and generating the golden image; then listed by <see cref="ModelCatalog.ListHubCache"/>.
/// </summary>
public sealed class HubModelTests(ITestOutputHelper output) : IDisposable
{
    private const string CaseName = "txt2img_eps_dpmpp";
    private const string Repo = "tiny-org/tiny-sd2-base";
    private readonly TempFolder _temp = new("sd-hub-models-");

    public void Dispose() => _temp.Dispose();

    private string CacheRoot => _temp.Combine("hub");

    private HubOptions HubOptionsFor(FakeHubServer server) => new() { Endpoint = server.Endpoint, CacheRoot = CacheRoot };

    /// <summary>The golden model folder as a repository, with a real fp16 copy of the UNet weights as the fp16 variant.</summary>
    private static Dictionary<string, byte[]> RepoFiles(string folder, string fp16UnetPath)
    {
        var files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);
        using (var unet = SafeTensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors")))
        using (var scope = NewDisposeScope())
            SafeTensorsWriter.Write(fp16UnetPath, unet.Tensors.Keys.Select(k => (k, unet.Read(k, ScalarType.Float16))).ToList());
        files["unet/diffusion_pytorch_model.fp16.safetensors"] = File.ReadAllBytes(fp16UnetPath);
        files["README.md"] = "# tiny"u8.ToArray();
        return files;
    }

    [Fact]
    public void HubIdDownloadsIntoTheHubCacheAndGeneratesTheGoldenImage()
    {
        using var golden = Golden.Case(CaseName);
        using var server = new FakeHubServer(Repo, RepoFiles(golden.ModelFolder, _temp.Combine("unet-fp16.safetensors")));
        var source = ModelStore.Resolve(Repo);
        Assert.Equal(new ModelSource(ModelSourceKind.HubRepository, Repo, Repo), source);

        var progress = new List<(string File, long Done, long Total)>();
        var log = new List<string>();
        var options = new ModelLoadOptions { DownloadProgress = (file, done, total, _) => { lock (progress) progress.Add((file, done, total)); } };
        var snapshot = Path.Combine(CacheRoot, "models--tiny-org--tiny-sd2-base", "snapshots", server.Commit);
        RunOutput fromHub;
        using (var lease = ModelStore.Acquire(source, ComputeTarget.Cpu32, options, HubOptionsFor(server), log.Add, default))
        {
            Assert.Equal(snapshot, lease.Engine.Source);
            fromHub = Run(lease.Engine, golden, null);
        }
        using (fromHub)
        {
            Assert.NotEmpty(progress);
            Assert.Contains(log, l => l.Contains($"Hub model '{Repo}' at 'main'", StringComparison.Ordinal));
            Assert.DoesNotContain(server.Requests, r => r.Target.Contains("fp16", StringComparison.Ordinal) || r.Target.Contains("README", StringComparison.Ordinal));

            using var folder = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
            using var fromFolder = Run(folder, golden, null);
            Assert.Equal(fromFolder.Image.Pixels, fromHub.Image.Pixels);
            Assert.True(ModelSourceTestSupport.SameValues(fromFolder.FinalLatents, fromHub.FinalLatents), "final latents differ between the hub download and the folder");
            int levels = MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), fromHub.Image);
            output.WriteLine($"hub model vs folder: bitwise equal; vs expected.png: {levels} level(s)");
            Assert.True(levels <= 2);
        }

        // A second acquire asks the hub once (has main moved?) and reuses the loaded engine: the key is the snapshot
        // folder, so naming the branch, or giving the snapshot folder as a path, is the same engine.
        int requests = server.Requests.Count;
        using (ModelStore.Acquire(source, ComputeTarget.Cpu32, new ModelLoadOptions { Revision = "main" }, HubOptionsFor(server), log.Add, default)) { }
        Assert.Equal(requests + 1, server.Requests.Count);
        Assert.Equal(1, log.Count(l => l.StartsWith("Using the cached txt2img model", StringComparison.Ordinal)));
        using (var byPath = ModelStore.Acquire(snapshot, ComputeTarget.Cpu32, null, default)) Assert.Equal(snapshot, byPath.Engine.Source);
        Assert.Single(EngineCache.Shared.List(), e => e.Model == snapshot);

        // The fp16 variant: another engine (the key holds the variant), the UNet from the fp16 file, widened to float32.
        using (var lease = ModelStore.Acquire(source, ComputeTarget.Cpu32, new ModelLoadOptions { Variant = "fp16" }, HubOptionsFor(server), log.Add, default))
        using (var scope = NewDisposeScope())
        using (var plain = SafeTensorsFile.Open(Path.Combine(golden.ModelFolder, "unet", "diffusion_pytorch_model.safetensors")))
        {
            var weight = lease.Engine.Unet.state_dict()["conv_in.weight"];
            Assert.Equal(ScalarType.Float32, weight.dtype);
            Assert.True(ModelSourceTestSupport.SameValues(plain.Read("conv_in.weight").to(ScalarType.Float16).to(ScalarType.Float32), weight));
        }
        Assert.Equal(2, EngineCache.Shared.List().Count(e => e.Model == snapshot));
        EngineCache.Shared.Clear(e => e.Model == snapshot);

        // Get-SDModel's view of the cache: one snapshot, described from its configs and headers.
        var listed = Assert.Single(ModelCatalog.ListHubCache(CacheRoot));
        Assert.Equal(Repo, listed.Name);
        Assert.Equal(snapshot, listed.Path);
        Assert.Equal(ModelCatalog.HubSource, listed.Source);
        Assert.Equal(server.Commit, listed.Commit);
        Assert.Equal(new[] { "main" }, listed.Refs);
        Assert.Equal("txt2img", listed.Kind);
        Assert.Equal("epsilon", listed.PredictionType);
        Assert.Equal("float32", listed.DType); // the plain weights, when a variant sits beside them
        var snapshotFiles = Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories).ToList();
        Assert.Contains(Path.Combine(snapshot, "unet", "diffusion_pytorch_model.fp16.safetensors"), snapshotFiles);
        Assert.Equal(snapshotFiles.Sum(f => File.ReadAllBytes(f).LongLength), listed.SizeOnDisk);
        Assert.Null(listed.Error);
    }

    [Fact]
    public void GatedRepositoryWithoutATokenSaysWhatToDo()
    {
        using var golden = Golden.Case(CaseName);
        using var server = new FakeHubServer(Repo, RepoFiles(golden.ModelFolder, _temp.Combine("unet-fp16.safetensors"))) { RequiredToken = "hf_secret" };
        var source = ModelStore.Resolve(Repo);
        var error = Assert.Throws<HubAuthenticationException>(() =>
            ModelStore.Acquire(source, ComputeTarget.Cpu32, ModelLoadOptions.Default, HubOptionsFor(server), null, default).Dispose());
        output.WriteLine(error.Message);
        Assert.Contains("HF_TOKEN", error.Message);
        Assert.Contains("pass a token", error.Message);
        Assert.Empty(ModelCatalog.ListHubCache(CacheRoot)); // nothing usable entered the cache

        // Offline with nothing cached: the offline error names the cache.
        var offline = Assert.Throws<HubOfflineException>(() => ModelStore.Acquire(source, ComputeTarget.Cpu32, ModelLoadOptions.Default,
            HubOptionsFor(server) with { Offline = true }, null, default).Dispose());
        Assert.Contains(CacheRoot, offline.Message);
    }
}
