namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// A single-file checkpoint that does not fit the SD 2.x layout or its config: a missing or wrongly shaped tensor,
/// an unknown key, or a disagreement with the ldm YAML. The message names the file and the key or field.
/// </summary>
public class SingleFileCheckpointException : Exception
{
    public SingleFileCheckpointException(string filePath, string message, Exception? inner = null)
        : base($"{filePath}: {message}", inner) => FilePath = filePath;

    public string FilePath { get; }
}
