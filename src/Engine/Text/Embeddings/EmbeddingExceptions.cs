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

/// <summary>An embedding the prompt uses whose vectors are not as wide as the text encoder's (a file made for SD 1.x,
/// 768 wide, with an SD 2.x model, 1024 wide).</summary>
public sealed class EmbeddingWidthException : IOException
{
    public EmbeddingWidthException(string name, string path, int width, int expected)
        : base($"The embedding '{name}' ('{path}') has vectors {width} wide but this model's text encoder takes {expected}" +
            (width == 768 && expected == 1024 ? " (it was made for SD 1.x; SD 2.x needs embeddings trained for SD 2.x)." : "."))
    {
        Name = name;
        FilePath = path;
        Width = width;
        Expected = expected;
    }

    public string Name { get; }
    public string FilePath { get; }
    public int Width { get; }
    public int Expected { get; }
}

/// <summary>A replay whose record names an embedding that no file in the embedding folders provides.</summary>
public sealed class EmbeddingNotFoundException : FileNotFoundException
{
    public EmbeddingNotFoundException(string name, string? shortHash)
        : base($"The image was made with the textual-inversion embedding '{name}'{(shortHash is null ? "" : $" (hash {shortHash})")}, " +
            "but no file of that name is in EmbeddingPath or SD_EMBEDDINGS.", name)
    {
        Name = name;
        ShortHash = shortHash;
    }

    public string Name { get; }
    public string? ShortHash { get; }
}
