namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>A replay whose record names an embedding that no file in the embedding folders provides.</summary>
public sealed class EmbeddingNotFoundException : FileNotFoundException
{
    public EmbeddingNotFoundException(string name, string? shortHash)
        : base(
            $"The image was made with the textual-inversion embedding " +
            $"'{name}'{(shortHash is null ? "" : $" (hash {shortHash})")}, " +
            "but no file of that name is in EmbeddingPath or SD_EMBEDDINGS.", name)
    {
        Name = name;
        ShortHash = shortHash;
    }

    public string Name { get; }
    public string? ShortHash { get; }
}
