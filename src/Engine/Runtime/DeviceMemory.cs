using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// The memory one call may take on its device, read just before it runs, with where the figure came from (for
/// -Verbose and the refusal). On the CPU: <see cref="AvailableMemory.CpuBytes"/>. On a CUDA device: the driver's free
/// memory (<see cref="IGpuMemoryProvider"/>) plus what libtorch's allocator keeps cached for reuse
/// (<see cref="CudaAllocatorCache"/>). The weights loaded on the GPU are already in use there, so the driver's free
/// figure excludes them and the call's estimate leaves them out (they are not counted twice).
/// </summary>
public sealed record DeviceMemory
{
    /// <summary><c>cpu</c> or <c>cuda:N</c>.</summary>
    public required string Device { get; init; }

    /// <summary>What the call may take; null when unknown (then nothing is refused).</summary>
    public long? AvailableBytes { get; init; }

    /// <summary>Where <see cref="AvailableBytes"/> came from.</summary>
    public required string Source { get; init; }

    /// <summary>Why <see cref="AvailableBytes"/> is unknown; null when known.</summary>
    public string? Problem { get; init; }

    /// <summary>The CUDA reading (free, total, the device's name); null on the CPU.</summary>
    public GpuMemoryReading? Gpu { get; init; }

    /// <summary>CUDA: bytes libtorch's allocator holds from earlier calls, reusable by this one.</summary>
    public long CachedBytes { get; init; }

    /// <summary>CUDA: bytes of weights the loaded models hold on the device (this one's included).</summary>
    public long ResidentBytes { get; init; }

    /// <summary>CUDA: of <see cref="ResidentBytes"/>, the other cached models' (freeing them makes it
    /// reusable).</summary>
    public long OtherModelsBytes { get; init; }

    /// <summary>Whether weights that view a mapped file count in the call's estimate: on the CPU they must stay in
    /// the page cache, which the available figure counts as free; on a GPU they are copies, already in use.</summary>
    public bool CountsMappedWeights => Gpu is null;

    internal CudaAllocatorCache? Allocator { get; init; }

    /// <summary>The CPU's available memory (<paramref name="availableBytes"/>; null: unknown).</summary>
    public static DeviceMemory Cpu(long? availableBytes) => new()
    {
        Device = "cpu",
        AvailableBytes = availableBytes,
        Source = AvailableMemory.CpuSource,
        Problem = availableBytes is null ? "this platform's available memory could not be read" : null,
    };

    /// <summary>
    /// A CUDA device's: the free bytes <paramref name="provider"/> reads for <paramref name="ordinal"/>, plus what
    /// <paramref name="allocator"/> says libtorch keeps cached beyond the <paramref name="residentBytes"/> of weights
    /// loaded there (<paramref name="otherModelsBytes"/> of them other models').
    /// </summary>
    public static DeviceMemory Cuda(int ordinal, IGpuMemoryProvider provider, long residentBytes,
        long otherModelsBytes, CudaAllocatorCache allocator)
    {
        var reading = provider.Read(ordinal);
        long cached = allocator.Reusable(ordinal, residentBytes);
        return new DeviceMemory
        {
            Device = $"cuda:{ordinal}",
            AvailableBytes = reading.FreeBytes is long free ? free + cached : null,
            Source = reading.Source,
            Problem = reading.Problem,
            Gpu = reading,
            CachedBytes = cached,
            ResidentBytes = residentBytes,
            OtherModelsBytes = otherModelsBytes,
            Allocator = allocator,
        };
    }

    /// <summary>The memory a call on <paramref name="model"/> may take on its device now: the engine's own
    /// readers and accounts.</summary>
    public static DeviceMemory Of(StableDiffusionModel model)
    {
        if (!model.Target.IsCuda) return Cpu(AvailableMemory.CpuBytes());
        int ordinal = model.Target.CudaOrdinal!.Value;
        long others = EngineCache.Shared.WeightBytesOn(model.Target.DeviceName, except: model);
        return Cuda(ordinal, CudaDriverMemory.Shared, others + model.MemoryBytes, others, CudaAllocatorCache.Shared);
    }

    /// <summary>Notes that a call of <paramref name="peakBytes"/> is about to run (CUDA: libtorch's cache will hold
    /// that much beside the weights afterwards).</summary>
    internal void RecordRun(long peakBytes)
    {
        if (Gpu is not null) Allocator?.Record(Gpu.Ordinal, ResidentBytes + peakBytes);
    }

    /// <summary>What is available and from where, as -Verbose says it.</summary>
    public string Describe()
    {
        if (AvailableBytes is not long available)
            return $"the memory available on {Label} is unknown ({Problem}; {Source}), so nothing is refused";
        if (Gpu is not { } gpu) return $"{GiB(available)} is available on {Device} ({Source})";
        return $"{GiB(available)} is available on {Label}: {GiB(gpu.FreeBytes!.Value)} free of " +
            $"{GiB(gpu.TotalBytes!.Value)} ({Source}), plus {GiB(CachedBytes)} that libtorch keeps cached from " +
            $"earlier calls; the {GiB(ResidentBytes)} of weights loaded there are already in use and not counted again";
    }

    /// <summary>The device, with the GPU's name where known.</summary>
    public string Label => Gpu?.Name is { } name ? $"{Device} ({name})" : Device;

    private static string GiB(long bytes) => NotEnoughMemoryException.GiB(bytes);
}
