namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// What libtorch's CUDA caching allocator keeps reserved on each device for this process, as far as the engine can
/// tell. A tensor that is freed goes back to the allocator's cache, not to the driver, and TorchSharp 0.107 can neither
/// empty that cache nor report its size. So after a call the driver counts the call's activations (and the weights of
/// a cleared model) as used, although libtorch hands those blocks to the next call, and frees them all and retries
/// before it reports an out-of-memory error. Without this account a call that just ran would be refused the second
/// time it is asked.
/// </summary>
/// <remarks>
/// The allocator only grows (nothing here empties it), so what it holds is about the most this process ever had in
/// use on the device at once: the weights resident then plus the largest call's peak. The account keeps that high-water
/// mark from the calls it let run; what it holds beyond the weights resident now is reusable. It errs on the
/// permissive side where libtorch released its cache after an out-of-memory error, which on a GPU fails cleanly (an
/// <c>InsufficientMemory</c> error, the engine still usable), unlike an exhausted CPU, where the system kills the
/// process.
/// </remarks>
public sealed class CudaAllocatorCache
{
    private readonly object _lock = new();
    private readonly Dictionary<int, long> _highWater = new();

    /// <summary>The account of this process's engine.</summary>
    public static CudaAllocatorCache Shared { get; } = new();

    /// <summary>Bytes the allocator holds on device <paramref name="ordinal"/> beyond the
    /// <paramref name="residentBytes"/> of weights loaded there now: free for the next call, though the driver counts
    /// them as used.</summary>
    public long Reusable(int ordinal, long residentBytes)
    {
        lock (_lock) return Math.Max(0, _highWater.GetValueOrDefault(ordinal) - residentBytes);
    }

    /// <summary>Records that <paramref name="bytesInUse"/> (resident weights plus a call's estimated peak) are about
    /// to be in use at once on device <paramref name="ordinal"/>.</summary>
    public void Record(int ordinal, long bytesInUse)
    {
        lock (_lock) _highWater[ordinal] = Math.Max(_highWater.GetValueOrDefault(ordinal), bytesInUse);
    }
}
