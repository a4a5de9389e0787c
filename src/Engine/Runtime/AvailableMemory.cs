using System.Globalization;
using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Memory a call can still take without the system killing the process: on Linux the kernel's own estimate
/// (<c>MemAvailable</c>: free memory plus reclaimable page cache), capped by the cgroup's limit when the process runs
/// in a container; on Windows the available physical memory. Null where it cannot be known (then nothing is refused).
/// </summary>
public static partial class AvailableMemory
{
    /// <summary>Available bytes for CPU work, or null when unknown on this platform.</summary>
    public static long? CpuBytes()
    {
        try
        {
            if (OperatingSystem.IsLinux())
                return Min(MeminfoAvailable("/proc/meminfo"), CgroupHeadroom("/sys/fs/cgroup"));
            if (OperatingSystem.IsWindows()) return WindowsAvailable();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // An unreadable /proc or cgroup file: no estimate, and no refusal built on a guess.
        }
        return null;
    }

    /// <summary>Where <see cref="CpuBytes"/> reads, as -Verbose names it.</summary>
    public static string CpuSource =>
        OperatingSystem.IsLinux() ? "MemAvailable of /proc/meminfo, within the cgroup's memory.max"
        : OperatingSystem.IsWindows() ? "GlobalMemoryStatusEx's available physical memory"
        : "no reader on this platform";

    /// <summary><c>MemAvailable</c> of a /proc/meminfo file, in bytes.</summary>
    internal static long? MeminfoAvailable(string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
            var kb = line["MemAvailable:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
            return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
        }
        return null;
    }

    /// <summary>cgroup v2's <c>memory.max</c> − <c>memory.current</c> under <paramref name="root"/>, or null
    /// without a limit.</summary>
    internal static long? CgroupHeadroom(string root)
    {
        string max = Path.Combine(root, "memory.max"), current = Path.Combine(root, "memory.current");
        if (!File.Exists(max) || !File.Exists(current)) return null;
        var limit = File.ReadAllText(max).Trim();
        if (limit == "max") return null;
        return Math.Max(0, long.Parse(limit, CultureInfo.InvariantCulture)
            - long.Parse(File.ReadAllText(current).Trim(), CultureInfo.InvariantCulture));
    }

    private static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    private static long? WindowsAvailable()
    {
        var status = new MemoryStatusEx { Length = (uint)Marshal.SizeOf<MemoryStatusEx>() };
        return GlobalMemoryStatusEx(ref status) ? (long)status.AvailablePhysical : null;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MemoryStatusEx
    {
        public uint Length;
        public uint MemoryLoad;
        public ulong TotalPhysical;
        public ulong AvailablePhysical;
        public ulong TotalPageFile;
        public ulong AvailablePageFile;
        public ulong TotalVirtual;
        public ulong AvailableVirtual;
        public ulong AvailableExtendedVirtual;
    }

    [LibraryImport("kernel32.dll", EntryPoint = "GlobalMemoryStatusEx")]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool GlobalMemoryStatusEx(ref MemoryStatusEx status);
}
