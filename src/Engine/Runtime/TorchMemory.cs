using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// libtorch's CPU allocator has no cache: every activation is a fresh allocation, and glibc serves the large ones
/// with a new mapping, so each UNet step faults in (and zeroes) its activations 4 KiB at a time: about 200k page
/// faults per 512² step. libtorch can ask for transparent huge pages instead (2 MiB alignment plus
/// <c>madvise(MADV_HUGEPAGE)</c> on buffers of 2 MiB and more) when <c>THP_MEM_ALLOC_ENABLE=1</c> is in the
/// native environment when it first allocates. That cuts the faults about 7×; the kernel's THP mode must be
/// <c>madvise</c> or <c>always</c>.
/// </summary>
public static partial class TorchMemory
{
    public const string HugePagesVariable = "THP_MEM_ALLOC_ENABLE";

    /// <summary>
    /// Asks libtorch for transparent huge pages (Linux; elsewhere nothing happens). Call it before the first tensor
    /// is created in the process: libtorch reads the setting once. Returns whether the setting is now in the
    /// native environment.
    /// </summary>
    public static bool EnableHugePages()
    {
        if (!OperatingSystem.IsLinux()) return false;
        // Environment.SetEnvironmentVariable only changes .NET's copy on Unix; libtorch reads the C environment.
        if (SetEnv(HugePagesVariable, "1", 1) != 0) return false;
        Environment.SetEnvironmentVariable(HugePagesVariable, "1");
        return true;
    }

    /// <summary>What the kernel allows: the selected mode of
    /// /sys/kernel/mm/transparent_hugepage/enabled, or null.</summary>
    public static string? KernelHugePageMode()
    {
        const string path = "/sys/kernel/mm/transparent_hugepage/enabled";
        if (!File.Exists(path)) return null;
        var text = File.ReadAllText(path);
        int start = text.IndexOf('['), end = text.IndexOf(']');
        return start >= 0 && end > start ? text[(start + 1)..end] : null;
    }

    /// <summary>
    /// Hands the C heap's free pages back to the system (glibc's <c>malloc_trim</c>; elsewhere nothing happens).
    /// glibc keeps freed activations below its adaptive mmap threshold (up to 32 MiB: most of a UNet step's) in its
    /// arenas, so without this the VAE decoder's working set lands on top of the UNet's freed one. Returns whether
    /// memory was released.
    /// </summary>
    public static bool ReleaseFreeHeap()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return MallocTrim(0) != 0;
        }
        catch (EntryPointNotFoundException)
        {
            return false; // musl and other C libraries without malloc_trim
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
