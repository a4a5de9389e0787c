namespace PSStableDiffusion.Engine.Text;

/// <summary>An embedding's vectors at positions <see cref="Start"/> .. Start + VectorCount − 1 of a chunk's 77
/// (BOS is 0).</summary>
public sealed record EmbeddingPlacement(int Start, Embeddings.TextualInversionEmbedding Embedding);
