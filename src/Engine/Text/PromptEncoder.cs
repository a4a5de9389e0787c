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

    /// <summary>While true, prompts are encoded afresh and not cached: the text encoder's weights differ from the ones
    /// the cache was filled with (a LoRA changes them for one call).</summary>
    internal bool BypassCache { get; set; }

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
    public PromptEmbedding Encode(string prompt, PromptSyntax syntax, Action<string>? warn = null)
    {
        if (syntax == PromptSyntax.None) return Encode(prompt, warn);
        bool allCached = true;
        var embeds = ChunkedPromptEncoding.Encode(_chunker.Split(prompt).Chunks, ids =>
        {
            var chunk = Cached(ids, out bool hit);                                 // [1, 77, D]
            allCached &= hit;
            return chunk;
        });                                                                                                        // [1, 77·k, D]
        return new PromptEmbedding(embeds, allCached);
    }

    /// <summary>The literal reading of <paramref name="prompt"/>: [1, 77, D], cut with a warning past the window.</summary>
    public PromptEmbedding Encode(string prompt, Action<string>? warn = null)
    {
        var encoding = _tokenizer.EncodeWithInfo(prompt);
        if (encoding.Truncated)
            warn?.Invoke($"The prompt is longer than the text encoder's {encoding.Ids.Length} tokens; this part was cut off: \"{encoding.DroppedText}\".");
        var embeds = Cached(encoding.Ids, out bool hit);
        return new PromptEmbedding(embeds, hit);
    }

    private Tensor Cached(IReadOnlyList<int> ids, out bool hit)
    {
        hit = false;
        return BypassCache ? EncodeIds(ids) : _cache.GetOrAdd(ids, () => EncodeIds(ids), out hit);
    }

    /// <summary>The text encoder's last hidden state for one row of token ids: [1, n, D].</summary>
    private Tensor EncodeIds(IReadOnlyList<int> ids)
    {
        var input = torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Count }, ScalarType.Int64, _device); // [1, n]
        return _textEncoder.forward(input).LastHiddenState;                                                               // [1, n, D]
    }

    public void Dispose() => _cache.Dispose();
}
