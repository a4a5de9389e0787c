using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// How many CPU threads libtorch uses for one operator (intra-op). libtorch's own default is the physical cores of
/// the machine (SMT siblings not counted; it follows the affinity mask, but not a cgroup CPU quota), while .NET's
/// <see cref="Environment.ProcessorCount"/> honours the quota but counts every logical processor (SMT siblings,
/// efficiency cores). The engine takes the smaller of the two: physical cores where SMT doubles the count, the CPUs
/// this process may use where a container quota allows fewer than the machine has. bench/RESULTS.md
/// ("Threads") has the figures.
/// </summary>
public static class TorchThreads
{
    private static readonly object Gate = new();
    private static int? _defaultBeforeConfigure;

    /// <summary>The thread count libtorch had before the engine first changed it (what TorchSharp
    /// defaults to).</summary>
    public static int LibTorchDefault
    {
        get
        {
            lock (Gate) return _defaultBeforeConfigure ?? torch.get_num_threads();
        }
    }

    /// <summary>The intra-op thread count in effect now.</summary>
    public static int Current => torch.get_num_threads();

    /// <summary>The default the engine applies: libtorch's default (physical cores), but no more than the processors
    /// this process may use.</summary>
    public static int Recommended => ChooseDefault(LibTorchDefault, Environment.ProcessorCount);

    /// <summary>The smaller of libtorch's default and the usable processors, at least 1.</summary>
    public static int ChooseDefault(int libTorchDefault, int processorCount) =>
        Math.Max(1, libTorchDefault < 1 ? processorCount : Math.Min(libTorchDefault, processorCount));

    /// <summary>
    /// Sets libtorch's intra-op thread count to <paramref name="threads"/>, or to <see cref="Recommended"/> when null.
    /// Returns the count now in effect.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> is less than 1.</exception>
    public static int Configure(int? threads = null)
    {
        if (threads is < 1)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "The thread count must be at least 1.");
        TorchLogging.QuietWarnings(); // the first generation of a process passes here before any convolution
        lock (Gate)
        {
            _defaultBeforeConfigure ??= torch.get_num_threads();
            int wanted = threads ?? Recommended;
            if (torch.get_num_threads() != wanted) torch.set_num_threads(wanted);
            return torch.get_num_threads();
        }
    }
}
