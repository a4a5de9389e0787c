using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>
/// A textual-inversion embedding read from a file: the vectors a prompt's trigger word stands for, each an input
/// (token) embedding of the text encoder. The trigger word is the file name without its extension, as in AUTOMATIC1111.
/// </summary>
public sealed class TextualInversionEmbedding : IDisposable
{
    internal TextualInversionEmbedding(string name, string path, Tensor vectors, string sha256, string format)
    {
        Name = name;
        Path = path;
        Vectors = vectors;
        Sha256 = sha256;
        Format = format;
    }

    /// <summary>The trigger word: the file name without its extension.</summary>
    public string Name { get; }

    public string Path { get; }

    /// <summary>[n, D] float32 on the CPU, as AUTOMATIC1111 keeps them (it converts every file to float32).</summary>
    public Tensor Vectors { get; }

    /// <summary>How many token positions the embedding takes in a prompt.</summary>
    public int VectorCount => (int)Vectors.shape[0];

    /// <summary>The width of each vector: the text encoder's hidden size it was trained for (1024 for SD 2.x, 768
    /// for SD 1.x).</summary>
    public int Width => (int)Vectors.shape[1];

    /// <summary>SHA-256 of the whole file, lower-case hex.</summary>
    public string Sha256 { get; }

    /// <summary>The first 12 hex digits of <see cref="Sha256"/>: what AUTOMATIC1111 writes in "TI hashes".</summary>
    public string ShortHash => Sha256[..ShortHashLength];

    /// <summary>Which layout the file had (for -Verbose and Get-SDEmbedding): "A1111 .pt", "diffusers
    /// concept", ...</summary>
    public string Format { get; }

    /// <summary>Digits of the SHA-256 AUTOMATIC1111 records per embedding (Embedding.set_hash: hash[0:12]).</summary>
    public const int ShortHashLength = 12;

    public void Dispose() => Vectors.Dispose();
}
