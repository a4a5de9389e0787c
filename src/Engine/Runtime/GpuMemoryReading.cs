namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// One reading of a GPU's memory: free and total bytes as its driver reports them, or why they could not be read (no
/// driver, an error code). Free memory is what every process on the GPU leaves, this one included: the weights our
/// engines hold there and the blocks libtorch keeps cached already count as used.
/// </summary>
/// <param name="Ordinal">The CUDA device ordinal (the N of <c>cuda:N</c>).</param>
/// <param name="FreeBytes">Free bytes; null when unknown.</param>
/// <param name="TotalBytes">The device's memory; null when unknown.</param>
/// <param name="Name">The device's name, where the driver gave it.</param>
/// <param name="Source">Where the figures come from (the driver library and call), or were looked for.</param>
/// <param name="Problem">Why the figures are unknown; null when they are known.</param>
public sealed record GpuMemoryReading(
    int Ordinal, long? FreeBytes, long? TotalBytes, string? Name, string Source, string? Problem)
{
    /// <summary>Whether free and total memory were read.</summary>
    public bool IsKnown => FreeBytes is not null && TotalBytes is not null;

    public static GpuMemoryReading Known(int ordinal, long freeBytes, long totalBytes, string? name, string source) =>
        new(ordinal, freeBytes, totalBytes, name, source, null);

    public static GpuMemoryReading Unknown(int ordinal, string source, string problem) =>
        new(ordinal, null, null, null, source, problem);
}
