using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Imaging;

public class AtomicFileTests
{
    [Fact]
    public void WritesAndReplacesWithoutLeavingTemporaryFiles()
    {
        using var temp = new TempFolder("psd-atomic-");
        var folder = temp.Path;
        var path = Path.Combine(folder, "out.png");
        AtomicFile.Write(path, new byte[] { 1, 2, 3 });
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
        AtomicFile.Write(path, new byte[] { 9 });
        Assert.Equal(new byte[] { 9 }, File.ReadAllBytes(path));
        Assert.Equal(["out.png"], Directory.GetFiles(folder).Select(Path.GetFileName));
    }

    [Fact]
    public void MissingDirectoryIsReportedAndNothingIsWritten()
    {
        using var temp = new TempFolder("psd-missing-");
        var path = temp.Combine("no-such-folder", "out.png");
        var e = Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.Write(path, new byte[] { 1 }));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AFailedWriteKeepsTheOldFile()
    {
        using var temp = new TempFolder("psd-atomic-");
        var folder = temp.Path;
        // The target is a directory: the rename fails, and the temporary file must be cleaned up.
        var target = Path.Combine(folder, "taken");
        Directory.CreateDirectory(target);
        Assert.ThrowsAny<IOException>(() => AtomicFile.Write(target, new byte[] { 1 }));
        Assert.Empty(Directory.GetFiles(folder));
        Assert.True(Directory.Exists(target));
    }

    [Fact]
    public void AReplaceRefusedForAMomentIsTriedAgainWithGrowingPauses()
    {
        using var folder = new TempFolder();
        var path = Path.Combine(folder.Path, "out.png");
        File.WriteAllBytes(path, [1]);
        var waits = new List<TimeSpan>();
        var refusals = 2;
        AtomicFile.Write(path, new byte[] { 7 }, (from, to, overwrite) =>
        {
            // What Windows says while a viewer holds the target open.
            if (refusals-- > 0) throw new IOException("The process cannot access the file because it is being used by another process.");
            File.Move(from, to, overwrite);
        }, waits.Add);
        Assert.Equal(new byte[] { 7 }, File.ReadAllBytes(path));
        Assert.Equal(AtomicFile.ReplaceRetryDelays[..2], waits);
        Assert.Equal(["out.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AReplaceRefusedForLongerFailsAfterTheLastPauseAndKeepsTheOldFile()
    {
        using var folder = new TempFolder();
        var path = Path.Combine(folder.Path, "out.png");
        File.WriteAllBytes(path, [1]);
        var waits = new List<TimeSpan>();
        Assert.Throws<UnauthorizedAccessException>(() => AtomicFile.Write(path, new byte[] { 7 },
            (_, _, _) => throw new UnauthorizedAccessException("Access to the path is denied."), waits.Add));
        Assert.Equal(AtomicFile.ReplaceRetryDelays, waits);
        Assert.Equal(new byte[] { 1 }, File.ReadAllBytes(path));
        Assert.Equal(["out.png"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFailedMoveToANewFileIsNotRetried()
    {
        using var folder = new TempFolder();
        var path = Path.Combine(folder.Path, "new.png");
        var waits = new List<TimeSpan>();
        Assert.Throws<IOException>(() => AtomicFile.Write(path, new byte[] { 7 }, (_, _, _) => throw new IOException("disk full"), waits.Add));
        Assert.Empty(waits);
        Assert.Empty(Directory.GetFiles(folder.Path));
    }
}
