namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// A call whose estimated peak (<see cref="MemoryEstimate"/>) exceeds the memory available now: refused before it
/// starts, instead of the system killing the process halfway. Says what would fit.
/// </summary>
public sealed class NotEnoughMemoryException : Exception
{
    /// <summary>The environment variable that turns the check off (<c>0</c> or <c>off</c>): an estimate is
    /// an estimate.</summary>
    public const string SwitchVariable = "SD_MEMORY_CHECK";

    public NotEnoughMemoryException(
        MemoryEstimate estimate, long availableBytes, bool tiledDecodeFits, (int Width, int Height)? fittingSize)
        : this(estimate, DeviceMemory.Cpu(availableBytes), tiledDecodeFits, fittingSize)
    {
    }

    /// <param name="memory">The device's memory as read for the call; its
    /// <see cref="DeviceMemory.AvailableBytes"/> is known.</param>
    public NotEnoughMemoryException(
        MemoryEstimate estimate, DeviceMemory memory, bool tiledDecodeFits, (int Width, int Height)? fittingSize)
        : base(Describe(estimate, memory, tiledDecodeFits, fittingSize))
    {
        Estimate = estimate;
        Memory = memory;
        AvailableBytes = memory.AvailableBytes ?? 0;
        TiledDecodeFits = tiledDecodeFits;
        FittingSize = fittingSize;
    }

    public MemoryEstimate Estimate { get; }

    public long AvailableBytes { get; }

    /// <summary>The device's memory as read for the call: where, from what, and (on a GPU) the driver's
    /// figures.</summary>
    public DeviceMemory Memory { get; }

    /// <summary>The device the call was refused on: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public string Device => Memory.Device;

    /// <summary>Whether freeing the other models cached on the device (Clear-SDEngine) would make room: their
    /// weights then return to libtorch's cache, which the next call reuses (GPU only; on the CPU unknown, so
    /// false).</summary>
    public bool FreeingOtherModelsFits =>
        Memory.OtherModelsBytes > 0 && Estimate.PeakBytes <= AvailableBytes + Memory.OtherModelsBytes;

    /// <summary>Whether the same call with a tiled decode (DecoderTileSize) would fit.</summary>
    public bool TiledDecodeFits { get; }

    /// <summary>The largest size of the same aspect ratio that would fit as asked, if any.</summary>
    public (int Width, int Height)? FittingSize { get; }

    internal static string GiB(long bytes) => $"{bytes / (1024.0 * 1024 * 1024):F1} GiB";

    private static string Describe(
        MemoryEstimate estimate, DeviceMemory memory, bool tiledDecodeFits, (int Width, int Height)? size)
    {
        var fits = new List<string>();
        if (tiledDecodeFits) fits.Add("a tiled decode (DecoderTileSize)");
        if (size is { } s) fits.Add($"a size of at most {s.Width}x{s.Height}");
        fits.Add(memory.OtherModelsBytes > 0
            ? $"freeing the other cached models on {memory.Device} (they hold {GiB(memory.OtherModelsBytes)})"
            : "freeing other cached models");
        long available = memory.AvailableBytes ?? 0;
        string stages = $"UNet {GiB(estimate.UnetBytes)}, decoder {GiB(estimate.DecoderBytes)}";
        if (memory.Gpu is not { } gpu)
            return $"This call needs about {GiB(estimate.PeakBytes)} at its peak " +
                $"(the {estimate.PeakStage}: {stages}, mapped weights {GiB(estimate.MappedWeightBytes)}), " +
                $"but only {GiB(available)} is available. What would fit: {string.Join(", or ", fits)}.";
        return $"This call needs about {GiB(estimate.PeakBytes)} on {memory.Label} at its peak " +
            $"(the {estimate.PeakStage}: {stages}), but only {GiB(available)} is available there: " +
            $"{GiB(gpu.FreeBytes ?? 0)} free of {GiB(gpu.TotalBytes ?? 0)} ({memory.Source}) plus " +
            $"{GiB(memory.CachedBytes)} that libtorch keeps cached; the {GiB(memory.ResidentBytes)} of weights " +
            $"loaded there are already in use. What would fit: {string.Join(", or ", fits)}.";
    }
}
