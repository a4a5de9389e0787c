using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// Encodes a chunked prompt as AUTOMATIC1111 does: each chunk through the text encoder alone, its emphasis applied
/// (<see cref="PromptEmphasis"/>), the chunk outputs concatenated along the sequence axis. The UNet's cross-attention
/// takes any sequence length, so a k-chunk prompt conditions it with 77·k vectors.
/// </summary>
public static class ChunkedPromptEncoding
{
    /// <summary>[1, 77·k, D] for the k chunks.</summary>
    /// <param name="encodeChunk">The text encoder's output for one chunk's ids, [1, 77, D] (a cache
    /// may answer it).</param>
    public static Tensor Encode(IReadOnlyList<PromptChunk> chunks, Func<int[], Tensor> encodeChunk) =>
        Encode(chunks, (PromptChunk c) => encodeChunk(c.Ids));

    /// <param name="encodeChunk">The text encoder's output for one chunk (its ids and embeddings), [1, 77, D].</param>
    public static Tensor Encode(IReadOnlyList<PromptChunk> chunks, Func<PromptChunk, Tensor> encodeChunk)
    {
        if (chunks.Count == 0) throw new ArgumentException("A prompt has at least one chunk.", nameof(chunks));
        using var scope = NewDisposeScope();
        // k × [1, 77, D]
        var parts = chunks.Select(c => PromptEmphasis.ApplyOriginal(encodeChunk(c), c.Weights)).ToArray();
        // [1, 77·k, D]
        var z = parts.Length == 1 ? parts[0] : cat(parts, 1);
        return z.MoveToOuterDisposeScope();
    }
}
