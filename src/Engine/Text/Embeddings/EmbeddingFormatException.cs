namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>A file that is not a textual-inversion embedding this engine can read (wrong layout, several terms, too
/// many vectors, damaged). Hostile pickles raise <see cref="Checkpoints.UnsafeCheckpointException"/> instead.</summary>
public sealed class EmbeddingFormatException : IOException
{
    public EmbeddingFormatException(string path, string problem, Exception? inner = null)
        : base($"'{path}' is not a usable textual-inversion embedding: {problem}", inner)
    {
        FilePath = path;
    }

    public string FilePath { get; }
}
