using PSStableDiffusion.Engine.Models.Clip;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// Turns prompts into the conditioning the UNet's cross-attention reads: tokenizer, text encoder and the model's
/// embedding cache. Each prompt is encoded alone (batch 1), as diffusers does, so a cached result is bit-identical to a
/// fresh one. The pipelines only ask "this prompt → [1, T, D]"; how a prompt becomes tokens lives here.
/// </summary>
public sealed class PromptEncoder : IDisposable
{
    private readonly ClipTokenizer _tokenizer;
    private readonly CLIPTextModel _textEncoder;
    private readonly Device _device;
    private readonly PromptEmbeddingCache _cache = new();
    private readonly PromptChunker _chunker;

    public PromptEncoder(ClipTokenizer tokenizer, CLIPTextModel textEncoder, Device device)
    {
        _tokenizer = tokenizer;
        _chunker = new PromptChunker(tokenizer);
        _textEncoder = textEncoder;
        _device = device;
    }

    /// <summary>
    /// What the text encoder's weights are now: empty for the loaded ones; while a LoRA changes them for one call, its
    /// description (each file's hash and text-encoder multiplier, in order). Part of every cache key, so an embedding
    /// made under a LoRA is served only under the same LoRAs, and a base one never while they are merged.
    /// </summary>
    internal string TextEncoderState { get; set; } = "";

    /// <summary>How many prompts' embeddings the cache holds now.</summary>
    public int CachedCount => _cache.Count;

    /// <summary>
    /// The conditioning for <paramref name="prompt"/> read with <paramref name="syntax"/>: [1, 77·k, D].
    /// AUTOMATIC1111 syntax: k chunks (<see cref="PromptChunker"/>), each encoded alone (and cached by its ids, before
    /// emphasis, so a hit is bit-identical), weighted, concatenated; a prompt without syntax of at most 75 tokens gives
    /// exactly the literal reading's ids and embedding. Literal: [1, 77, D]; a prompt longer than the window is cut, as
    /// diffusers cuts it, and <paramref name="warn"/> names the part that was dropped.
    /// </summary>
    /// <exception cref="PromptSyntaxException">A weight AUTOMATIC1111 cannot read either.</exception>
    /// <exception cref="PromptTooLongException">More than <see cref="PromptChunker.MaxChunks"/> chunks.</exception>
    public PromptEmbedding Encode(string prompt, PromptSyntax syntax, Action<string>? warn = null) =>
        Encode(prompt, syntax, warn, embeddings: null);

    /// <summary>
    /// As <see cref="Encode(string, PromptSyntax, Action{string}?)"/>, with the textual-inversion embeddings of
    /// <paramref name="embeddings"/> in place of their names (AUTOMATIC1111 syntax only; the literal reading has no
    /// names to replace). Their vectors replace the token embeddings of their positions for this encoding only.
    /// </summary>
    /// <exception cref="Embeddings.EmbeddingWidthException">A named embedding is not as wide as the text
    /// encoder.</exception>
    /// <exception cref="Embeddings.EmbeddingFormatException">A named embedding's file cannot be read.</exception>
    public PromptEmbedding Encode(
        string prompt, PromptSyntax syntax, Action<string>? warn, Embeddings.EmbeddingLibrary? embeddings)
    {
        if (syntax == PromptSyntax.None) return Encode(prompt, warn);
        bool allCached = true;
        var embeds = ChunkedPromptEncoding.Encode(_chunker.Split(prompt, embeddings).Chunks, chunk =>
        {
            // [1, 77, D]
            var z = Cached(chunk.Ids, chunk.Embeddings, () => EncodeChunk(chunk), out bool hit);
            allCached &= hit;
            return z;
        // [1, 77·k, D]
        });
        return new PromptEmbedding(embeds, allCached);
    }

    /// <summary>
    /// The one way into the cache, for both readings: the key holds everything the text encoder's output depends on,
    /// the ids, each placed embedding's position and file hash (a placeholder id alone says nothing) and
    /// <see cref="TextEncoderState"/>. A literal prompt and a chunk with the same ids and nothing else share an entry.
    /// </summary>
    private Tensor Cached(
        IReadOnlyList<int> ids, IReadOnlyList<EmbeddingPlacement> placed, Func<Tensor> encode, out bool hit)
    {
        var key = string.Join(',', ids);
        if (placed.Count > 0) key += "|" + string.Join(',', placed.Select(e => $"{e.Start}:{e.Embedding.Sha256}"));
        if (TextEncoderState.Length > 0) key += "#" + TextEncoderState;
        return _cache.GetOrAdd(key, encode, out hit);
    }

    /// <summary>The text encoder's output for one chunk, with its embeddings' vectors as the token embeddings of their
    /// positions (A1111's EmbeddingsWithFixes): [1, 77, D].</summary>
    private Tensor EncodeChunk(PromptChunk chunk)
    {
        if (chunk.Embeddings.Count == 0) return EncodeIds(chunk.Ids);
        using var scope = NewDisposeScope();
        // [1, 77]
        var input = torch.tensor(
            chunk.Ids.Select(i => (long)i).ToArray(), new long[] { 1, chunk.Ids.Length }, ScalarType.Int64, _device);
        // [1, 77, D]
        var tokens = _textEncoder.EmbedTokens(input).clone();
        foreach (var placement in chunk.Embeddings)
        {
            // [n, D]
            var vectors = placement.Embedding.Vectors.to(tokens.dtype, _device);
            tokens[0, TensorIndex.Slice(placement.Start, placement.Start + vectors.shape[0])] = vectors;
        }
        // [1, 77, D]
        return _textEncoder.forward(input, tokens).LastHiddenState.MoveToOuterDisposeScope();
    }

    /// <summary>The literal reading of <paramref name="prompt"/>: [1, 77, D], cut with a warning past
    /// the window.</summary>
    public PromptEmbedding Encode(string prompt, Action<string>? warn = null)
    {
        var encoding = _tokenizer.EncodeWithInfo(prompt);
        if (encoding.Truncated)
            warn?.Invoke(
                $"The prompt is longer than the text encoder's {encoding.Ids.Length} " +
                $"tokens; this part was cut off: \"{encoding.DroppedText}\".");
        var embeds = Cached(encoding.Ids, [], () => EncodeIds(encoding.Ids), out bool hit);
        return new PromptEmbedding(embeds, hit);
    }

    /// <summary>The text encoder's last hidden state for one row of token ids: [1, n, D].</summary>
    private Tensor EncodeIds(IReadOnlyList<int> ids)
    {
        var input = torch.tensor(
            ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }, ScalarType.Int64, _device); // [1, n]
        // [1, n, D]
        return _textEncoder.forward(input).LastHiddenState;
    }

    public void Dispose() => _cache.Dispose();
}
