using System.Diagnostics;
using System.Runtime.InteropServices;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;

namespace PSStableDiffusion.Engine.Tests.Loading;

/// <summary>
/// A user who may read a model folder but not write it (a shared /opt/models, a read-only mount, a hub cache another
/// account filled) loads it and gets the golden image. Weights are mapped copy-on-write from a read-only handle; before
/// issue 12 the mapping asked for write access and the load failed with "Access to the path ... is denied".
/// On Linux as root (CI) the generation runs as the unprivileged user <see cref="UserName"/> through runuser, in a
/// child process (this test assembly's own entry point, <see cref="Program"/>); as any other user it runs as that
/// user. It is never skipped: when it cannot run unprivileged, it fails.
/// </summary>
public sealed class ReadOnlyModelTests(ITestOutputHelper output)
{
    public const string UserName = "psstablediffusion-test";
    private const string CaseName = "txt2img_eps_dpmpp";

    [Fact]
    public void ReadOnlyModelCopy_LoadsForAnUnprivilegedUser_AndGivesTheGoldenImage()
    {
        using var work = new TempFolder("sd-readonly-"); // deleted once MakeWritable below has given the files back
        try
        {
            var model = Path.Combine(work.Path, "model");
            CopyFolder(Golden.Path(CaseName, "model"), model);
            var image = Path.Combine(work.Path, "out", "image.png");
            Directory.CreateDirectory(Path.GetDirectoryName(image)!);
            MakeReadOnly(model);

            if (OperatingSystem.IsWindows()) GenerateHoldingAReadHandle(model, image);
            else RunChild(model, image, work.Path);

            using var golden = Golden.Case(CaseName);
            int levels = MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), SDImage.Load(image));
            output.WriteLine($"read-only copy vs expected.png: {levels} level(s)");
            Assert.True(levels <= 2, $"{levels} levels from the golden image");
        }
        finally
        {
            MakeWritable(work.Path);
        }
    }

    /// <summary>The child's work: load the read-only folder, run the golden call, write the PNG; prints the user id.</summary>
    internal static int GenerateFromChild(string model, string image)
    {
        Console.WriteLine($"uid {(OperatingSystem.IsWindows() ? -1 : geteuid())}");
        using var golden = Golden.Case(CaseName);
        using var loaded = DiffusersFolderLoader.Load(model, ComputeTarget.Cpu32);
        using var run = Run(loaded, golden, null);
        run.Image.Save(image);
        return 0;
    }

    private void RunChild(string model, string image, string work)
    {
        var dotnet = Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        var testAssembly = typeof(ReadOnlyModelTests).Assembly.Location;
        var childArgs = new List<string> { dotnet, "exec", testAssembly, Program.GenerateReadOnlyVerb, model, image };
        var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true };
        if (geteuid() == 0)
        {
            EnsureUser();
            // The child writes only the image, to a folder it owns; the model stays root's and read-only.
            Chown(Path.GetDirectoryName(image)!);
            start.FileName = "runuser";
            foreach (var arg in new[] { "-u", UserName, "--" }.Concat(childArgs)) start.ArgumentList.Add(arg);
        }
        else
        {
            start.FileName = childArgs[0];
            foreach (var arg in childArgs.Skip(1)) start.ArgumentList.Add(arg);
        }
        start.Environment["PSSTABLEDIFFUSION_CACHE"] = Path.GetDirectoryName(image)!;
        start.Environment["HOME"] = Path.GetDirectoryName(image)!;
        using var child = Process.Start(start)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        Assert.True(child.WaitForExit(TimeSpan.FromMinutes(8)), "the unprivileged child did not finish in 8 minutes");
        output.WriteLine(stdout.Result + stderr.Result);
        Assert.True(child.ExitCode == 0, $"the unprivileged child failed (exit {child.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        var uid = stdout.Result.Split('\n').Single(l => l.StartsWith("uid ", StringComparison.Ordinal))[4..].Trim();
        Assert.NotEqual("0", uid); // it really ran unprivileged
    }

    private static void EnsureUser()
    {
        if (RunTool("id", "-u", UserName) == 0) return;
        // CI runs as root in a fresh container: make the user (.ci/run does the same); no home, no login.
        int code = RunTool("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", UserName);
        Assert.True(code == 0 && RunTool("id", "-u", UserName) == 0,
            $"running as root, but the unprivileged user '{UserName}' does not exist and useradd failed ({code}): this test " +
            "cannot run the load as a non-root user, so it fails (create the user, or run the suite through .ci/run)");
    }

    private static void Chown(string folder) =>
        Assert.Equal(0, RunTool("chown", UserName, folder));

    private static int RunTool(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        try
        {
            using var process = Process.Start(start)!;
            process.WaitForExit();
            return process.ExitCode;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1; // the tool is missing
        }
    }

    /// <summary>Windows: the read-only attribute, and another reader holding the UNet weights open meanwhile.</summary>
    private static void GenerateHoldingAReadHandle(string model, string image)
    {
        var weights = Path.Combine(model, "unet", "diffusion_pytorch_model.safetensors");
        using var otherReader = new FileStream(weights, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        GenerateFromChild(model, image);
    }

    private static void CopyFolder(string source, string destination)
    {
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private static void MakeReadOnly(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            if (OperatingSystem.IsWindows()) File.SetAttributes(file, FileAttributes.ReadOnly);
            else File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        if (OperatingSystem.IsWindows()) return;
        foreach (var dir in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories).Append(folder))
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead |
                UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        // The work folder itself must be traversable for the other user (temp folders are created 0700).
        File.SetUnixFileMode(Path.GetDirectoryName(folder)!, (UnixFileMode)0b111_101_101);
    }

    private static void MakeWritable(string folder)
    {
        foreach (var dir in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories))
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
            if (OperatingSystem.IsWindows()) File.SetAttributes(file, FileAttributes.Normal);
    }

    [DllImport("libc", SetLastError = false)]
    private static extern uint geteuid();
}
