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
        : base(Describe(estimate, availableBytes, tiledDecodeFits, fittingSize))
    {
        Estimate = estimate;
        AvailableBytes = availableBytes;
        TiledDecodeFits = tiledDecodeFits;
        FittingSize = fittingSize;
    }

    public MemoryEstimate Estimate { get; }

    public long AvailableBytes { get; }

    /// <summary>Whether the same call with a tiled decode (DecoderTileSize) would fit.</summary>
    public bool TiledDecodeFits { get; }

    /// <summary>The largest size of the same aspect ratio that would fit as asked, if any.</summary>
    public (int Width, int Height)? FittingSize { get; }

    internal static string GiB(long bytes) => $"{bytes / (1024.0 * 1024 * 1024):F1} GiB";

    private static string Describe(
        MemoryEstimate estimate, long available, bool tiledDecodeFits, (int Width, int Height)? size)
    {
        var fits = new List<string>();
        if (tiledDecodeFits) fits.Add("a tiled decode (DecoderTileSize)");
        if (size is { } s) fits.Add($"a size of at most {s.Width}x{s.Height}");
        fits.Add("freeing other cached models");
        return $"This call needs about {GiB(estimate.PeakBytes)} at its peak " +
            $"(the {estimate.PeakStage}: UNet {GiB(estimate.UnetBytes)}, " +
            $"decoder {GiB(estimate.DecoderBytes)}, mapped weights " +
            $"{GiB(estimate.MappedWeightBytes)}), but only {GiB(available)} " +
            $"is available. What would fit: {string.Join(", or ", fits)}.";
    }
}
