namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// Cuts a parsed prompt into text-encoder chunks as AUTOMATIC1111 does for Stable Diffusion (modules/sd_hijack_clip.py,
/// <c>tokenize_line</c> and <c>process_tokens</c>):
/// each fragment is tokenized on its own; tokens fill chunks of 75; when a chunk is full and the last comma is at
/// most <see cref="CommaBacktrack"/> tokens back, the tokens after that comma move to the next chunk; a BREAK ends the
/// chunk; each chunk becomes BOS + 75 + EOS with short ones filled out, and every id after a chunk's first EOS is the
/// tokenizer's pad id (0 for SD 2.x, where A1111 pads with 0; for SD 1.x the pad is EOS itself).
/// A prompt of at most 75 tokens without BREAK therefore gives exactly the ids diffusers' pipeline gives.
/// </summary>
public sealed class PromptChunker
{
    /// <summary>Prompt tokens per chunk (77 positions less BOS and EOS).</summary>
    public const int ChunkLength = 75;

    /// <summary>A1111's default for "comma padding backtrack".</summary>
    public const int DefaultCommaBacktrack = 20;

    /// <summary>Most chunks a prompt may need (2,400 tokens); see <see cref="PromptTooLongException"/>.</summary>
    public const int MaxChunks = 32;

    private readonly ClipTokenizer _tokenizer;
    private readonly int _commaId;

    public PromptChunker(ClipTokenizer tokenizer, int commaBacktrack = DefaultCommaBacktrack)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentOutOfRangeException.ThrowIfNegative(commaBacktrack);
        _tokenizer = tokenizer;
        _commaId = tokenizer.TokenId(",</w>") ?? -1;
        CommaBacktrack = commaBacktrack;
    }

    /// <summary>How far back (in tokens) a comma may be for the text after it to move to the next chunk;
    /// 0 = never.</summary>
    public int CommaBacktrack { get; }

    /// <summary>Parses <paramref name="prompt"/> (<see cref="PromptParser"/>) and chunks it.</summary>
    /// <exception cref="PromptSyntaxException">A weight that cannot be read.</exception>
    /// <exception cref="PromptTooLongException">More than <see cref="MaxChunks"/> chunks.</exception>
    public PromptChunks Split(string prompt) => Split(PromptParser.Parse(prompt));

    /// <summary>Parses and chunks <paramref name="prompt"/>, with the names of <paramref name="embeddings"/> replaced
    /// by their vectors (<see cref="Split(IReadOnlyList{PromptFragment}, Embeddings.EmbeddingLibrary?)"/>).</summary>
    public PromptChunks Split(string prompt, Embeddings.EmbeddingLibrary? embeddings) =>
        Split(PromptParser.Parse(prompt), embeddings);

    /// <summary>Chunks already parsed fragments.</summary>
    /// <exception cref="PromptTooLongException">More than <see cref="MaxChunks"/> chunks.</exception>
    public PromptChunks Split(IReadOnlyList<PromptFragment> fragments) => Split(fragments, null);

    /// <summary>
    /// Chunks already parsed fragments. Where a fragment's tokens spell an embedding's name (longest name first), the
    /// embedding takes as many positions as it has vectors, with the fragment's weight, as AUTOMATIC1111 places it
    /// (sd_hijack_clip.py): when it does not fit in the chunk's remaining positions the chunk is closed first, so an
    /// embedding is never split across chunks.
    /// </summary>
    public PromptChunks Split(IReadOnlyList<PromptFragment> fragments, Embeddings.EmbeddingLibrary? embeddings)
    {
        var builder = new ChunkBuilder(_tokenizer, CommaBacktrack);
        foreach (var fragment in fragments)
        {
            if (fragment.IsBreak) { builder.Close(); continue; }
            float weight = (float)fragment.Weight;
            var ids = _tokenizer.EncodeText(fragment.Text);
            for (int position = 0; position < ids.Count;)
            {
                builder.Prepare(ids[position] == _commaId);
                if (embeddings?.Match(ids, position) is { } found)
                {
                    builder.AppendEmbedding(found.Embedding, weight);
                    position += found.NameTokens;
                }
                else builder.Append(ids[position++], weight);
            }
        }
        var result = builder.Finish();
        if (result.Chunks.Count > MaxChunks)
            throw new PromptTooLongException(result.TokenCount, MaxChunks * ChunkLength);
        return result;
    }

    /// <summary>The chunk being filled and the finished ones (A1111's <c>next_chunk</c> state).</summary>
    private sealed class ChunkBuilder(ClipTokenizer tokenizer, int commaBacktrack)
    {
        private readonly List<PromptChunk> _done = new();
        private List<int> _ids = new();
        private List<float> _weights = new();
        private List<EmbeddingPlacement> _embeddings = new(); // Start counted without BOS while the chunk fills
        private int _lastComma = -1;
        private int _tokenCount;

        /// <summary>Before the token at a prompt position (an embedding's name starts with one too): remembers a comma,
        /// or moves the text after the last comma on when the chunk is full; closes a full chunk.</summary>
        public void Prepare(bool isComma)
        {
            if (isComma) _lastComma = _ids.Count;
            else if (commaBacktrack > 0
                && _ids.Count == ChunkLength && _lastComma >= 0 && _ids.Count - _lastComma <= commaBacktrack)
                MoveTailAfterLastComma();
            if (_ids.Count == ChunkLength) Close();
        }

        public void Append(int id, float weight)
        {
            _ids.Add(id);
            _weights.Add(weight);
        }

        /// <summary>The embedding's placeholder ids (0, as A1111 writes them) with the weight where it stands; in the
        /// next chunk when it does not fit in this one.</summary>
        public void AppendEmbedding(Embeddings.TextualInversionEmbedding embedding, float weight)
        {
            int count = embedding.VectorCount;
            if (_ids.Count + count > ChunkLength) Close();
            _embeddings.Add(new EmbeddingPlacement(_ids.Count, embedding));
            for (int k = 0; k < count; k++) Append(0, weight);
        }

        /// <summary>Closes the full chunk at its last comma and starts the next with what followed the comma.</summary>
        private void MoveTailAfterLastComma()
        {
            int cut = _lastComma + 1;
            var movedIds = _ids.GetRange(cut, _ids.Count - cut);
            var movedWeights = _weights.GetRange(cut, _weights.Count - cut);
            // Unlike A1111, whose fix stays behind (its vectors then land on the old chunk's padding), an embedding
            // moves with its positions.
            var movedEmbeddings = _embeddings.Where(e => e.Start >= cut)
                .Select(e => e with { Start = e.Start - cut })
                .ToList();
            _embeddings.RemoveAll(e => e.Start >= cut);
            _ids.RemoveRange(cut, _ids.Count - cut);
            _weights.RemoveRange(cut, _weights.Count - cut);
            Close();
            _ids = movedIds;
            _weights = movedWeights;
            _embeddings = movedEmbeddings;
        }

        /// <summary>Ends the current chunk (full, at a BREAK, or at the end of the prompt).</summary>
        public void Close(bool isLast = false)
        {
            _tokenCount += isLast ? _ids.Count : ChunkLength;
            var ids = new int[ChunkLength + 2];
            var weights = new float[ChunkLength + 2];
            Array.Fill(weights, 1f);
            ids[0] = tokenizer.BosTokenId;
            _ids.CopyTo(ids, 1);
            _weights.CopyTo(weights, 1);
            // an EOS typed into the prompt counts
            int firstEnd = Array.IndexOf(ids, tokenizer.EosTokenId, 1, _ids.Count);
            if (firstEnd < 0) firstEnd = _ids.Count + 1;
            ids[firstEnd] = tokenizer.EosTokenId;
            for (int k = firstEnd + 1; k < ids.Length; k++) ids[k] = tokenizer.PadTokenId;
            _done.Add(new PromptChunk(ids, weights, _embeddings.Select(e => e with { Start = e.Start + 1 }).ToArray()));
            _ids = new List<int>();
            _weights = new List<float>();
            _embeddings = new List<EmbeddingPlacement>();
            _lastComma = -1;
        }

        public PromptChunks Finish()
        {
            if (_ids.Count > 0 || _done.Count == 0) Close(isLast: true);
            return new PromptChunks(_done, _tokenCount);
        }
    }
}
