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
}
