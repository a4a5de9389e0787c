namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// One text-encoder input of a prompt: BOS, up to 75 prompt tokens, EOS, then padding — 77 ids, each with the weight
/// its prompt text carries (1 for BOS, EOS and padding).
/// </summary>
/// <param name="Ids">The 77 token ids as the text encoder gets them.</param>
/// <param name="Weights">The 77 emphasis weights, as float32 (AUTOMATIC1111 turns its Python floats into a float32
/// tensor before multiplying).</param>
/// <param name="Embeddings">Textual-inversion embeddings whose vectors replace the token embeddings of their
/// positions (their ids are placeholders, 0, as in AUTOMATIC1111); empty when none.</param>
public sealed record PromptChunk(int[] Ids, float[] Weights, IReadOnlyList<EmbeddingPlacement> Embeddings)
{
    public PromptChunk(int[] ids, float[] weights) : this(ids, weights, []) { }

    /// <summary>True when any weight differs from 1, i.e. when emphasis changes the chunk's encoding.</summary>
    public bool IsWeighted => Weights.Any(w => w != 1f);
}
