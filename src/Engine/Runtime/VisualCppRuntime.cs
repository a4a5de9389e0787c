using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// libtorch's Windows DLLs (c10.dll, torch_cpu.dll) import the Visual C++ runtime, which no NuGet package ships. On a
/// Windows machine without it, loading libtorch fails with "The specified module could not be found", which names
/// neither the missing DLL nor the fix; so the module looks for the runtime first and names the redistributable.
/// </summary>
public static class VisualCppRuntime
{
    /// <summary>The runtime DLLs libtorch 2.10's win-x64 natives import (checked by the PE import test).</summary>
    public static readonly IReadOnlyList<string> Libraries = ["msvcp140.dll", "vcruntime140.dll", "vcruntime140_1.dll"];

    public const string RedistributableName = "Microsoft Visual C++ 2015-2022 Redistributable (x64)";
    public const string DownloadUrl = "https://aka.ms/vs/17/release/vc_redist.x64.exe";

    private static readonly object Gate = new();
    private static IReadOnlyList<string>? _missing;

    /// <summary>The runtime DLLs that <paramref name="canLoad"/> cannot load (default: the system loader's answer;
    /// none outside Windows, where libtorch does not use this runtime).</summary>
    public static IReadOnlyList<string> FindMissing(Func<string, bool>? canLoad = null)
    {
        if (canLoad is null && !OperatingSystem.IsWindows()) return [];
        canLoad ??= TryLoad;
        return Libraries.Where(name => !canLoad(name)).ToList();
    }

    /// <summary>Checks once per process that the runtime is there.</summary>
    /// <exception cref="NativeRuntimeMissingException">It is not: the message names the DLLs and the
    /// redistributable.</exception>
    public static void EnsureInstalled()
    {
        IReadOnlyList<string> missing;
        lock (Gate) missing = _missing ??= FindMissing();
        if (missing.Count > 0) throw new NativeRuntimeMissingException(missing);
    }

    private static bool TryLoad(string name)
    {
        if (!NativeLibrary.TryLoad(name, out var handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }
}
