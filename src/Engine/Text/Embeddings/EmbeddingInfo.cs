namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>What Get-SDEmbedding reports about one embedding file.</summary>
/// <param name="Name">The trigger word: the file name without its extension.</param>
/// <param name="Vectors">Token positions it takes in a prompt.</param>
/// <param name="Width">Width of each vector (1024 for SD 2.x, 768 for SD 1.x).</param>
/// <param name="Fits">Whether <paramref name="Width"/> is the text encoder width asked about.</param>
/// <param name="Hash">The first 12 hex digits of the file's SHA-256, as "TI hashes" records it.</param>
/// <param name="Sha256">The whole SHA-256.</param>
/// <param name="Format">The layout found (A1111 .pt, diffusers concept, safetensors emb_params, ...).</param>
public sealed record EmbeddingInfo(
    string Name, int Vectors, int Width, bool Fits, string Hash, string Path, string Sha256, string Format)
{
    /// <summary>Reads the file; <paramref name="width"/> is the text encoder width it should have.</summary>
    /// <exception cref="EmbeddingFormatException">Not an embedding.</exception>
    /// <exception cref="Checkpoints.UnsafeCheckpointException">A pickle that references code.</exception>
    public static EmbeddingInfo Read(string path, int width)
    {
        using var embedding = EmbeddingFile.Read(path);
        return new EmbeddingInfo(embedding.Name, embedding.VectorCount, embedding.Width, embedding.Width == width,
            embedding.ShortHash, path, embedding.Sha256, embedding.Format);
    }
}
