using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// How many CPU threads libtorch uses for one operator (intra-op). libtorch picks its own default at start-up
/// (the physical cores it sees, which can differ from what the process may use under cgroups/affinity), so the
/// engine sets it explicitly: by default to the processors this process may run on, or to a user override.
/// </summary>
public static class TorchThreads
{
    private static readonly object Gate = new();
    private static int? _defaultBeforeConfigure;

    /// <summary>The thread count libtorch had before the engine first changed it (what TorchSharp defaults to).</summary>
    public static int LibTorchDefault
    {
        get
        {
            lock (Gate) return _defaultBeforeConfigure ?? torch.get_num_threads();
        }
    }

    /// <summary>The intra-op thread count in effect now.</summary>
    public static int Current => torch.get_num_threads();

    /// <summary>The default the engine applies: the processors available to this process.</summary>
    public static int Recommended => Math.Max(1, Environment.ProcessorCount);

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
