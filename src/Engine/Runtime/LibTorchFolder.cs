using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Loads libtorch from a folder outside the module, for builds against a libtorch that no TorchSharp package carries
/// (a newer CUDA, the libtorch of a Python install). LibTorchSharp, built for that libtorch, stays next to
/// TorchSharp.dll, where TorchSharp looks for it; the libtorch libraries stay in their folder. Before TorchSharp loads
/// anything, this class loads c10, torch_cpu (and c10_cuda, torch_cuda) and torch from that folder by full path, so
/// that TorchSharp's later loads by name, and LibTorchSharp's own dependencies, find these copies (the loaders of
/// Linux, macOS and Windows all reuse an already loaded library of the same name). The folder's own dependencies
/// (libgomp, the CUDA runtime, cuDNN) resolve as the folder's libraries say (RUNPATH; on Windows the folder is put on
/// the DLL search path).
/// </summary>
public static class LibTorchFolder
{
    /// <summary>Written by build.ps1 next to the assembly of a module built with -LibTorch.</summary>
    public const string SettingsFileName = "PSStableDiffusion.LibTorch.json";

    /// <summary>Overrides the folder the settings name (a libtorch that moved since the build).</summary>
    public const string FolderVariable = "PSSTABLEDIFFUSION_LIBTORCH";

    private static readonly object Gate = new();
    private static string? _loadedFolder;

    /// <summary>The library folder libtorch was loaded from by this class, or null (the module's
    /// own natives).</summary>
    public static string? LoadedFolder
    {
        get { lock (Gate) return _loadedFolder; }
    }

    /// <summary>The settings next to <paramref name="assemblyFolder"/>, or null when the natives are bundled.</summary>
    /// <exception cref="LibTorchFolderException">The file exists but cannot be read.</exception>
    public static LibTorchSettings? ReadSettings(string assemblyFolder)
    {
        var path = Path.Combine(assemblyFolder, SettingsFileName);
        if (!File.Exists(path)) return null;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(path));
            var folder = json.RootElement.GetProperty("folder").GetString();
            var backend = json.RootElement.TryGetProperty("backend", out var b) ? b.GetString() : "cpu";
            if (string.IsNullOrWhiteSpace(folder) || backend is not ("cpu" or "cuda"))
                throw new InvalidDataException("'folder' is empty or 'backend' is not cpu or cuda");
            return new LibTorchSettings(folder, backend);
        }
        catch (Exception e)
            when (e is JsonException or KeyNotFoundException or InvalidOperationException or InvalidDataException)
        {
            throw new LibTorchFolderException(
                path, LibTorchProblem.Unreadable,
                $"{path} is not a valid libtorch settings file ({e.Message}). " +
                $"Rebuild the module with build.ps1 -LibTorch <folder>.");
        }
    }

    /// <summary>
    /// Loads libtorch from the folder the settings next to this assembly name (or <see cref="FolderVariable"/>), once
    /// per process. Does nothing when the module carries its own natives.
    /// </summary>
    /// <exception cref="LibTorchFolderException">The folder is missing, lacks a library, or a library does
    /// not load.</exception>
    public static void EnsureLoaded()
    {
        var assemblyFolder = Path.GetDirectoryName(typeof(LibTorchFolder).Assembly.Location);
        if (string.IsNullOrEmpty(assemblyFolder)) return;
        var settings = ReadSettings(assemblyFolder);
        if (settings is null) return;
        var overridden = Environment.GetEnvironmentVariable(FolderVariable);
        Load(string.IsNullOrWhiteSpace(overridden) ? settings.Folder : overridden, settings.RequiresCuda);
    }

    /// <summary>Checks <paramref name="folder"/> and loads its libtorch (once per process; a second folder is
    /// an error).</summary>
    /// <exception cref="LibTorchFolderException">See <see cref="Check"/>; or a library failed to load.</exception>
    public static void Load(string folder, bool requireCuda)
    {
        lock (Gate)
        {
            var libraries = Check(folder, requireCuda);
            var libraryFolder = Path.GetDirectoryName(libraries[0])!;
            if (_loadedFolder is not null)
            {
                if (PathsEqual(_loadedFolder, libraryFolder)) return;
                throw new LibTorchFolderException(folder, LibTorchProblem.AlreadyLoaded,
                    $"libtorch is already loaded from {_loadedFolder} in " +
                    $"this process; start a new PowerShell to use {folder}.");
            }
            if (OperatingSystem.IsWindows()) PrependToPath(libraryFolder); // cuDNN and nvrtc load their parts by name
            foreach (var library in libraries)
            {
                try
                {
                    NativeLibrary.Load(library);
                }
                catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
                {
                    throw new LibTorchFolderException(folder, LibTorchProblem.LoadFailed,
                        $"{library} did not load: {e.Message} Check that the folder is a complete libtorch " +
                        $"for this platform and that its dependencies (the CUDA runtime, cuDNN) are installed.");
                }
            }
            _loadedFolder = libraryFolder;
        }
    }

    /// <summary>
    /// The full paths of the libraries to load from <paramref name="folder"/>, in load order.
    /// </summary>
    /// <exception cref="LibTorchFolderException">The folder does not exist, is no libtorch, or (with
    /// <paramref name="requireCuda"/>) holds no libtorch_cuda.</exception>
    public static IReadOnlyList<string> Check(string folder, bool requireCuda)
    {
        if (!Directory.Exists(folder))
            throw new LibTorchFolderException(folder, LibTorchProblem.FolderNotFound,
                $"The libtorch folder '{folder}' does not exist. Rebuild with build.ps1 -LibTorch " +
                $"<folder>, or set ${FolderVariable} to the folder that holds libtorch's lib folder.");
        var libraryFolder = LibraryFolder(folder);
        var core = new[] { "c10", "torch_cpu" };
        var missingCore = core.Where(name => !File.Exists(Path.Combine(libraryFolder, FileName(name)))).ToList();
        if (missingCore.Count > 0)
            throw new LibTorchFolderException(folder, LibTorchProblem.NotLibTorch,
                $"'{folder}' holds no libtorch: " +
                $"{string.Join(", ", missingCore.Select(FileName))} not found in {libraryFolder}. " +
                "Give the folder of a libtorch archive, or Python's torch package folder (site-packages/torch).");
        if (requireCuda && !File.Exists(Path.Combine(libraryFolder, FileName("torch_cuda"))))
            throw new LibTorchFolderException(folder, LibTorchProblem.NoCuda,
                $"The libtorch in '{folder}' has no CUDA support: " +
                $"{FileName("torch_cuda")} not found in {libraryFolder}. " +
                "This module was built for CUDA: give the folder of a " +
                "CUDA build of libtorch (or rebuild with -Backend cpu).");
        var names = requireCuda
            ? new[] { "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch" } : ["c10", "torch_cpu", "torch"];
        return names.Select(name => Path.Combine(libraryFolder, FileName(name))).Where(File.Exists).ToList();
    }

    /// <summary>
    /// The folder that holds the libraries: <c>lib</c> under a libtorch archive's root or Python's torch package
    /// (where libtorch's CMake files and headers also live), else the folder itself.
    /// </summary>
    public static string LibraryFolder(string folder)
    {
        var lib = Path.Combine(folder, "lib");
        return File.Exists(Path.Combine(lib, FileName("c10"))) ? lib : folder;
    }

    /// <summary>
    /// The libtorch version the folder states: <c>build-version</c> of a libtorch archive, or <c>version.py</c> of
    /// Python's torch package (e.g. 2.11.0+cu130); null when neither says.
    /// </summary>
    public static string? Version(string folder)
    {
        foreach (var root in new[] { folder, Path.GetDirectoryName(
            Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar)) })
        {
            if (root is null) continue;
            var buildVersion = Path.Combine(root, "build-version");
            if (File.Exists(buildVersion)) return File.ReadAllText(buildVersion).Trim();
            var versionPy = Path.Combine(root, "version.py");
            if (File.Exists(versionPy))
            {
                var match = Regex.Match(
                    File.ReadAllText(versionPy), @"^__version__\s*=\s*['""]([^'""]+)['""]", RegexOptions.Multiline);
                if (match.Success) return match.Groups[1].Value;
            }
        }
        return null;
    }

    /// <summary>A libtorch library's file name on this platform: c10 → libc10.so, c10.dll, libc10.dylib.</summary>
    public static string FileName(string library) =>
        OperatingSystem.IsWindows() ? library +
            ".dll" : OperatingSystem.IsMacOS() ? $"lib{library}.dylib" : $"lib{library}.so";

    private static bool PathsEqual(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd(Path.DirectorySeparatorChar),
        Path.GetFullPath(b).TrimEnd(Path.DirectorySeparatorChar), OperatingSystem.IsWindows()
            ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);

    private static void PrependToPath(string folder)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        if (path.Split(Path.PathSeparator).Any(entry => entry.Length > 0 && PathsEqual(entry, folder))) return;
        Environment.SetEnvironmentVariable("PATH", folder + Path.PathSeparator + path);
    }
}
