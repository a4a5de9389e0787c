namespace PSStableDiffusion.Engine.Imaging;

/// <summary>An image file that cannot be read: not an image, truncated, corrupt, or over the size limits.</summary>
public sealed class ImageFormatException : Exception
{
    public ImageFormatException(string? path, string reason, Exception? inner = null)
        : base($"Cannot read image '{path ?? "(in memory)"}': {reason}", inner)
    {
        FilePath = path;
        Reason = reason;
    }

    /// <summary>The file that was read, or null for in-memory data.</summary>
    public string? FilePath { get; }

    /// <summary>Why it was refused, without the file name.</summary>
    public string Reason { get; }
}
