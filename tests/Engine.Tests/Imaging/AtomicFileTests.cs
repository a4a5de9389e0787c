using PSStableDiffusion.Engine.Imaging;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Imaging;

public class AtomicFileTests
{
    [Fact]
    public void WritesAndReplacesWithoutLeavingTemporaryFiles()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"psd-atomic-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            var path = Path.Combine(folder, "out.png");
            AtomicFile.Write(path, new byte[] { 1, 2, 3 });
            Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(path));
            AtomicFile.Write(path, new byte[] { 9 });
            Assert.Equal(new byte[] { 9 }, File.ReadAllBytes(path));
            Assert.Equal(["out.png"], Directory.GetFiles(folder).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void MissingDirectoryIsReportedAndNothingIsWritten()
    {
        var path = Path.Combine(Path.GetTempPath(), $"psd-missing-{Guid.NewGuid():N}", "out.png");
        var e = Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.Write(path, new byte[] { 1 }));
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AFailedWriteKeepsTheOldFile()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"psd-atomic-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            // The target is a directory: the rename fails, and the temporary file must be cleaned up.
            var target = Path.Combine(folder, "taken");
            Directory.CreateDirectory(target);
            Assert.ThrowsAny<IOException>(() => AtomicFile.Write(target, new byte[] { 1 }));
            Assert.Empty(Directory.GetFiles(folder));
            Assert.True(Directory.Exists(target));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
