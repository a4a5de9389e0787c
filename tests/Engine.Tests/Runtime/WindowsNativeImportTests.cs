using System.Text.RegularExpressions;
using PSStableDiffusion.Engine.Runtime;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// Whether the win-x64 natives the module ships can load on Windows, checked from here: every DLL that
/// LibTorchSharp.dll, libtorch's DLLs and libSkiaSharp.dll import is in the module folder or is part of Windows (or
/// the Visual C++ runtime, which the module checks for), and every function LibTorchSharp takes from libtorch is
/// exported by it (TorchSharp issue #1567: 16 unresolved imports in one TorchSharp/libtorch pairing).
/// The DLLs come from the NuGet packages the build uses (the test project downloads libtorch-cpu-win-x64).
/// </summary>
public class WindowsNativeImportTests(ITestOutputHelper output)
{
    private const string TorchSharpVersion = "0.107.0";
    private const string LibTorchVersion = "2.10.0";
    private const string SkiaSharpVersion = "3.119.4";

    // build.ps1 leaves these libtorch files out of the module ($UnneededNatives): nothing may need them.
    private static readonly Regex Unneeded = new(@"^(torch_python|jitbackend_test|torchbind_test|nnapi_backend|aoti_custom_ops|torch_global_deps|backend_with_compiler|(lib)?shm)\.dll$", RegexOptions.IgnoreCase);

    // Windows' own DLLs (Windows 10 and later: the universal C runtime's api-ms-win-crt-* included).
    private static readonly Regex WindowsDll = new(
        @"^(api-ms-win-[a-z0-9-]+|ext-ms-win-[a-z0-9-]+|kernel32|kernelbase|ntdll|user32|gdi32|advapi32|shell32|shlwapi|ole32|oleaut32|ws2_32|" +
        @"bcrypt|crypt32|dbghelp|imagehlp|psapi|version|userenv|secur32|iphlpapi|setupapi|winmm|ucrtbase|comdlg32|dwrite|d3d11|dxgi|usp10|opengl32|" +
        @"fontsub|xmllite|rpcrt4|normaliz|mswsock|powrprof|dnsapi|netapi32|wintrust|imm32|comctl32|uxtheme|dwmapi|cfgmgr32|synchronization)\.dll$",
        RegexOptions.IgnoreCase);

    private static readonly Regex VisualCppRuntimeDll = new(@"^(msvcp140(_\d+|_atomic_wait|_codecvt_ids)?|vcruntime140(_\d+)?|concrt140|vcomp140)\.dll$", RegexOptions.IgnoreCase);

    private static string Packages =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    private static IReadOnlyList<PortableExecutableImports> ModuleDlls()
    {
        var folders = new[]
        {
            Path.Combine(Packages, "torchsharp", TorchSharpVersion, "runtimes", "win-x64", "native"),
            Path.Combine(Packages, "libtorch-cpu-win-x64", LibTorchVersion, "runtimes", "win-x64", "native"),
            Path.Combine(Packages, "skiasharp.nativeassets.win32", SkiaSharpVersion, "runtimes", "win-x64", "native"),
        };
        foreach (var folder in folders)
            Assert.True(Directory.Exists(folder), $"{folder} is missing: restore tests/Engine.Tests (it downloads the win-x64 natives).");
        return folders.SelectMany(Directory.EnumerateFiles)
            .Where(file => file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && !Unneeded.IsMatch(Path.GetFileName(file)))
            .Select(PortableExecutableImports.Read)
            .ToList();
    }

    [Fact]
    public void EveryImportedDllIsInTheModuleFolderOrPartOfWindows()
    {
        var dlls = ModuleDlls();
        var shipped = dlls.Select(dll => Path.GetFileName(dll.Path)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        Assert.Contains("LibTorchSharp.dll", shipped);
        Assert.Contains("torch_cpu.dll", shipped);
        var unresolved = dlls.SelectMany(dll => dll.Imports.Keys
                .Where(name => !shipped.Contains(name) && !WindowsDll.IsMatch(name) && !VisualCppRuntimeDll.IsMatch(name))
                .Select(name => $"{Path.GetFileName(dll.Path)} imports {name}"))
            .ToList();
        output.WriteLine($"{dlls.Count} DLLs, {dlls.Sum(dll => dll.Imports.Count)} DLL imports: " +
            string.Join(", ", dlls.SelectMany(dll => dll.Imports.Keys).Select(name => name.ToLowerInvariant()).Distinct().Order()));
        Assert.Empty(unresolved);
    }

    [Fact]
    public void EveryFunctionLibTorchSharpTakesFromLibTorchIsExportedByIt()
    {
        var dlls = ModuleDlls().ToDictionary(dll => Path.GetFileName(dll.Path), StringComparer.OrdinalIgnoreCase);
        var bridge = dlls["LibTorchSharp.dll"];
        var checkedCount = 0;
        var missing = new List<string>();
        foreach (var (library, functions) in bridge.Imports)
        {
            if (!dlls.TryGetValue(library, out var provider)) continue; // Windows and the VC++ runtime: the test above
            checkedCount += functions.Count;
            missing.AddRange(functions.Where(f => !provider.Exports.Contains(f)).Select(f => $"{library}!{f}"));
        }
        output.WriteLine($"{checkedCount} functions LibTorchSharp.dll takes from libtorch, {missing.Count} not exported");
        Assert.Empty(missing);
        // c10.dll and torch_cpu.dll supply 1,827 functions to TorchSharp 0.107's bridge; a reader that found none
        // would prove nothing.
        Assert.True(checkedCount > 1000, $"only {checkedCount} imports from libtorch were found");
    }

    [Fact]
    public void TheVisualCppRuntimeTheNativesImportIsWhatTheModuleLooksFor()
    {
        var imported = ModuleDlls().SelectMany(dll => dll.Imports.Keys)
            .Where(name => VisualCppRuntimeDll.IsMatch(name))
            .Select(name => name.ToLowerInvariant())
            .ToHashSet();
        Assert.NotEmpty(imported);
        Assert.Subset(VisualCppRuntime.Libraries.ToHashSet(), imported);
    }

    [Fact]
    public void AMissingRuntimeIsNamedWithTheRedistributable()
    {
        Assert.Equal(["vcruntime140_1.dll"], VisualCppRuntime.FindMissing(name => name != "vcruntime140_1.dll"));
        Assert.Empty(VisualCppRuntime.FindMissing(_ => true));
        var e = new NativeRuntimeMissingException(["msvcp140.dll", "vcruntime140.dll"]);
        Assert.Contains("Visual C++ 2015-2022 Redistributable", e.Message);
        Assert.Contains("msvcp140.dll, vcruntime140.dll", e.Message);
        Assert.Contains(VisualCppRuntime.DownloadUrl, e.Message);
    }
}
