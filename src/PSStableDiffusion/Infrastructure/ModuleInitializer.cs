using System.Management.Automation;
using PSStableDiffusion.Engine.Runtime;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// Runs when the module is imported, before any tensor exists: lets libtorch's CPU allocator use transparent huge
/// pages (the benchmark saw page faults per UNet step drop from 211k to 30k), which only works if set first; and, for
/// a module built against an installed libtorch, loads it from its folder.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer
{
    public void OnImport()
    {
        TorchMemory.EnableHugePages();
        try
        {
            // A module built with build.ps1 -LibTorch: load that libtorch before anything (an argument completer, a
            // type converter) makes TorchSharp look for it. A problem is reported by the first
            // cmdlet, as an ErrorRecord.
            LibTorchFolder.EnsureLoaded();
        }
        catch (LibTorchFolderException)
        {
        }
    }
}
