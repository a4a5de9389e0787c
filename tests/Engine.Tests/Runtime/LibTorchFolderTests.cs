using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// build.ps1 -LibTorch: the checks on the libtorch folder and its settings file, on fake folders (empty files with
/// libtorch's names; nothing is loaded). Loading a real folder is tested by tests/Pester/Build, in its own process.
/// </summary>
public sealed class LibTorchFolderTests : IDisposable
{
    private readonly TempFolder _temp = new("sd-libtorch-");

    public void Dispose() => _temp.Dispose();

    private string FakeLibTorch(string name, bool inLib, params string[] libraries)
    {
        var root = Path.Combine(_temp.Path, name);
        var folder = inLib ? Path.Combine(root, "lib") : root;
        Directory.CreateDirectory(folder);
        foreach (var library in libraries) File.WriteAllBytes(Path.Combine(folder, LibTorchFolder.FileName(library)), []);
        return root;
    }

    [Fact]
    public void ACpuLibTorchHasNoCudaAndTheErrorNamesTheFolderAndTheMissingLibrary()
    {
        var folder = FakeLibTorch("cpu-only", inLib: true, "c10", "torch_cpu", "torch");

        var error = Assert.Throws<LibTorchFolderException>(() => LibTorchFolder.Check(folder, requireCuda: true));

        Assert.Equal(LibTorchProblem.NoCuda, error.Problem);
        Assert.Equal(folder, error.Folder);
        Assert.Contains(LibTorchFolder.FileName("torch_cuda"), error.Message);
        Assert.Contains(folder, error.Message);
    }

    [Fact]
    public void ACudaLibTorchIsLoadedInDependencyOrderFromItsLibFolder()
    {
        var folder = FakeLibTorch("cuda", inLib: true, "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch");
        var lib = Path.Combine(folder, "lib");

        var libraries = LibTorchFolder.Check(folder, requireCuda: true);

        Assert.Equal(new[] { "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch" }.Select(n => Path.Combine(lib, LibTorchFolder.FileName(n))), libraries);
        Assert.Equal(lib, LibTorchFolder.LibraryFolder(folder));
    }

    [Fact]
    public void ALibFolderGivenDirectlyIsUsedAsItIs()
    {
        var folder = FakeLibTorch("flat", inLib: false, "c10", "torch_cpu");

        var libraries = LibTorchFolder.Check(folder, requireCuda: false);

        Assert.Equal(new[] { "c10", "torch_cpu" }.Select(n => Path.Combine(folder, LibTorchFolder.FileName(n))), libraries);
    }

    [Fact]
    public void AFolderWithoutLibTorchOrThatDoesNotExistIsRefused()
    {
        var empty = FakeLibTorch("empty", inLib: false);
        var notLibTorch = Assert.Throws<LibTorchFolderException>(() => LibTorchFolder.Check(empty, requireCuda: false));
        Assert.Equal(LibTorchProblem.NotLibTorch, notLibTorch.Problem);
        Assert.Contains(LibTorchFolder.FileName("c10"), notLibTorch.Message);

        var missing = Path.Combine(_temp.Path, "no-such-folder");
        var notFound = Assert.Throws<LibTorchFolderException>(() => LibTorchFolder.Check(missing, requireCuda: true));
        Assert.Equal(LibTorchProblem.FolderNotFound, notFound.Problem);
        Assert.Contains(LibTorchFolder.FolderVariable, notFound.Message);
    }

    [Fact]
    public void TheSettingsFileNamesFolderAndBackend()
    {
        Assert.Null(LibTorchFolder.ReadSettings(_temp.Path));

        File.WriteAllText(Path.Combine(_temp.Path, LibTorchFolder.SettingsFileName), """{ "folder": "/opt/libtorch", "backend": "cuda", "version": "2.11.0" }""");
        Assert.Equal(new LibTorchSettings("/opt/libtorch", "cuda"), LibTorchFolder.ReadSettings(_temp.Path));
        Assert.True(LibTorchFolder.ReadSettings(_temp.Path)!.RequiresCuda);

        File.WriteAllText(Path.Combine(_temp.Path, LibTorchFolder.SettingsFileName), """{ "backend": "tpu" }""");
        var error = Assert.Throws<LibTorchFolderException>(() => LibTorchFolder.ReadSettings(_temp.Path));
        Assert.Equal(LibTorchProblem.Unreadable, error.Problem);
    }

    [Fact]
    public void TheVersionComesFromALibTorchArchiveOrPythonsTorchPackage()
    {
        var archive = FakeLibTorch("archive", inLib: true, "c10", "torch_cpu");
        File.WriteAllText(Path.Combine(archive, "build-version"), "2.10.0+cu128\n");
        Assert.Equal("2.10.0+cu128", LibTorchFolder.Version(LibTorchFolder.LibraryFolder(archive)));

        var package = FakeLibTorch("torch", inLib: true, "c10", "torch_cpu");
        File.WriteAllText(Path.Combine(package, "version.py"), "from typing import Optional\n__version__ = '2.11.0+cu130'\ngit_version = 'abc'\n");
        Assert.Equal("2.11.0+cu130", LibTorchFolder.Version(package));

        Assert.Null(LibTorchFolder.Version(FakeLibTorch("unstated", inLib: false, "c10")));
    }
}
