namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Bounds checked before any pixel is decoded, so that a small crafted file cannot make us allocate gigabytes
/// (decompression bombs) or spin on huge metadata.
/// </summary>
public static class ImageLimits
{
    /// <summary>Largest width or height accepted (pixels).</summary>
    public const int MaxDimension = 16384;

    /// <summary>Largest width × height accepted: 8192² (~256 MiB as RGBA).</summary>
    public const long MaxPixels = 8192L * 8192L;

    /// <summary>Largest image file read (bytes).</summary>
    public const long MaxFileBytes = 512L * 1024 * 1024;

    /// <summary>Largest text chunk payload, after decompression for zTXt/iTXt (bytes).</summary>
    public const int MaxTextBytes = 1024 * 1024;

    internal static void CheckDimensions(long width, long height, string? path)
    {
        if (width <= 0 || height <= 0)
            throw new ImageFormatException(path, $"invalid size {width}x{height}.");
        if (width > MaxDimension || height > MaxDimension)
            throw new ImageFormatException(
                path, $"size {width}x{height} exceeds the limit of {MaxDimension} pixels per side.");
        if (width * height > MaxPixels)
            throw new ImageFormatException(path, $"size {width}x{height} exceeds the limit of {MaxPixels} pixels.");
    }
}
