using System.Globalization;
using System.Text.Json;
using PSStableDiffusion.Engine.Imaging;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Remembers <see cref="PrecisionSpeed"/> per machine in <c>precision-speed.json</c> of the <see cref="CacheFolder"/>,
/// keyed by what decides it: the CPU, its bf16 instructions, the libtorch version and the thread count. Like the model
/// hash cache it is a convenience: an unreadable or unwritable file means measuring again, never an error.
/// </summary>
public sealed class PrecisionSpeedCache(string path)
{
    private const string FileName = "precision-speed.json";
    private static readonly object FileLock = new();

    /// <summary>The cache in the default <see cref="CacheFolder"/>.</summary>
    public static PrecisionSpeedCache Default => new(System.IO.Path.Combine(CacheFolder.Path, FileName));

    public string FilePath { get; } = path;

    /// <summary>This machine's measurement at the current thread count: from the default cache, else
    /// measured now.</summary>
    public static PrecisionSpeed ForThisMachine() =>
        Default.GetOrMeasure(MachineKey(CpuDescription.Current, TorchThreads.Current), PrecisionSpeed.Measure, out _);

    /// <summary>This machine's key: CPU name and bf16 instructions, libtorch version, intra-op threads now.</summary>
    public static string MachineKey(CpuDescription cpu, int threads) => string.Join('|',
        cpu.Name ?? "unknown CPU", $"avx512_bf16={cpu.HasAvx512Bf16}", $"amx_bf16={cpu.HasAmxBf16}",
        $"libtorch={torch.__version__}", $"threads={threads.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>The stored measurement for <paramref name="key"/>, else <paramref name="measure"/>'s,
    /// then stored.</summary>
    /// <param name="cached">Whether the result came from the file.</param>
    public PrecisionSpeed GetOrMeasure(string key, Func<PrecisionSpeed> measure, out bool cached)
    {
        lock (FileLock)
        {
            if (Read().TryGetValue(key, out var known) && known.Float32Seconds > 0 && known.BFloat16Seconds > 0)
            {
                cached = true;
                return known;
            }
        }
        var speed = measure();
        lock (FileLock)
        {
            var entries = Read();
            entries[key] = speed;
            TryWrite(entries);
        }
        cached = false;
        return speed;
    }

    private Dictionary<string, PrecisionSpeed> Read()
    {
        try
        {
            if (!File.Exists(FilePath)) return new(StringComparer.Ordinal);
            var entries = JsonSerializer.Deserialize<Dictionary<string, PrecisionSpeed>>(File.ReadAllText(FilePath));
            return entries is null ? new(StringComparer.Ordinal) : new(entries, StringComparer.Ordinal);
        }
        catch (Exception ex)
            when (ex is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return new(StringComparer.Ordinal);
        }
    }

    private void TryWrite(Dictionary<string, PrecisionSpeed> entries)
    {
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(FilePath)!);
            AtomicFile.Write(FilePath, JsonSerializer.SerializeToUtf8Bytes(entries));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Read-only home or a full disk: the choice is still right, only measured again next session.
        }
    }
}
