using System.Diagnostics;

namespace PSStableDiffusion.Bench;

/// <summary>Wall-clock timing and resident-memory readings.</summary>
internal static class Measure
{
    /// <summary>Runs <paramref name="run"/> <paramref name="warmups"/> times untimed, then <paramref name="repeats"/> times timed (seconds).</summary>
    /// <summary>CPU seconds (user + system, all threads) and minor page faults of each timed run of the last <see cref="Time"/> call.</summary>
    public static List<double> LastCpuSeconds { get; } = new();
    public static List<double> LastPageFaults { get; } = new();
    public static List<double> LastWarmups { get; } = new();
    public static List<double> LastSystemSeconds { get; } = new();

    public static List<double> Time(Action run, int warmups, int repeats, string label, Action? afterWarmups = null)
    {
        LastCpuSeconds.Clear();
        LastPageFaults.Clear();
        LastWarmups.Clear();
        LastSystemSeconds.Clear();
        for (int i = 0; i < warmups; i++)
        {
            var clock = Stopwatch.StartNew();
            run();
            LastWarmups.Add(clock.Elapsed.TotalSeconds);
            Log($"  {label}: warm-up {clock.Elapsed.TotalSeconds:F3} s");
        }
        afterWarmups?.Invoke();
        var runs = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            GC.Collect();
            var cpuBefore = CpuSeconds();
            var systemBefore = SystemSeconds();
            var faultsBefore = MinorFaults();
            var clock = Stopwatch.StartNew();
            run();
            runs.Add(clock.Elapsed.TotalSeconds);
            LastCpuSeconds.Add(CpuSeconds() - cpuBefore);
            LastSystemSeconds.Add(SystemSeconds() - systemBefore);
            LastPageFaults.Add(MinorFaults() - faultsBefore);
            Log($"  {label}: run {i + 1}/{repeats} {runs[^1]:F3} s (CPU {LastCpuSeconds[^1]:F1} s of which kernel {LastSystemSeconds[^1]:F1} s, {LastPageFaults[^1]:F0} page faults)");
        }
        return runs;
    }

    public static double CpuSeconds()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }

    public static double SystemSeconds()
    {
        using var process = Process.GetCurrentProcess();
        return process.PrivilegedProcessorTime.TotalSeconds;
    }

    /// <summary>Minor page faults of this process so far (Linux; 0 elsewhere): each is a fresh page being mapped.</summary>
    public static double MinorFaults()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return double.Parse(fields[7]); // field 10 (minflt), counted from field 3 (state)
    }

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Resets the peak-RSS mark (Linux: writing "5" to /proc/self/clear_refs resets VmHWM to the current RSS).
    /// Returns false where that is not possible (then the peak covers the process's whole life).
    /// </summary>
    public static bool ResetPeak()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Peak resident memory in bytes: VmHWM on Linux, the peak working set elsewhere.</summary>
    public static long PeakBytes()
    {
        if (OperatingSystem.IsLinux() && ReadStatusKb("VmHWM") is { } kb) return kb * 1024;
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }

    /// <summary>Current resident memory in bytes.</summary>
    public static long CurrentBytes()
    {
        if (OperatingSystem.IsLinux() && ReadStatusKb("VmRSS") is { } kb) return kb * 1024;
        using var process = Process.GetCurrentProcess();
        return process.WorkingSet64;
    }

    /// <summary>A /proc/self/status size in bytes (Linux: e.g. RssAnon, the heap; RssFile, mapped files); null elsewhere.</summary>
    public static long? StatusBytes(string field) => OperatingSystem.IsLinux() && ReadStatusKb(field) is { } kb ? kb * 1024 : null;

    private static long? ReadStatusKb(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith(field + ":", StringComparison.Ordinal)) continue;
            var parts = line[(field.Length + 1)..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0]);
        }
        return null;
    }

    public static void Log(string line) => Console.Error.WriteLine(line);
}
