using PSStableDiffusion.Engine.Networks;

namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>
/// The textual-inversion embeddings one generation may use: the files in the embedding folders (a
/// <see cref="NetworkFileLookup"/>), each known by its name's tokens, as AUTOMATIC1111's EmbeddingDatabase knows them
/// (<c>register_embedding</c>: the name tokenized without BOS/EOS, looked up by its first token, longest name first).
/// A file is read only when a prompt uses its name, and then once; the model's token-embedding table is never touched,
/// so other calls on the same cached model do not see the embedding.
/// </summary>
public sealed class EmbeddingLibrary : IDisposable
{
    /// <summary>The environment variable that lists embedding folders (after EmbeddingPath's).</summary>
    public const string EnvironmentVariable = "SD_EMBEDDINGS";

    private readonly Dictionary<int, List<(int[] Ids, NetworkFile File)>> _byFirstToken = new();
    private readonly Dictionary<string, TextualInversionEmbedding> _loaded = new(StringComparer.Ordinal);
    private readonly List<TextualInversionEmbedding> _used = new();
    private readonly int _width;

    /// <param name="files">Where the embeddings are.</param>
    /// <param name="tokenizer">The model's tokenizer: a name is matched as the tokens it gives.</param>
    /// <param name="width">The text encoder's hidden size: an embedding of another width is refused when used.</param>
    public EmbeddingLibrary(NetworkFileLookup files, ClipTokenizer tokenizer, int width)
    {
        Files = files;
        _width = width;
        foreach (var file in files.Files)
        {
            var ids = tokenizer.EncodeText(file.Name).ToArray();
            if (ids.Length == 0) continue; // a name the tokenizer reads as nothing cannot appear in a prompt
            if (!_byFirstToken.TryGetValue(ids[0], out var list)) _byFirstToken[ids[0]] = list = new();
            list.Add((ids, file));
        }
        foreach (var list in _byFirstToken.Values) list.Sort((a, b) => b.Ids.Length.CompareTo(a.Ids.Length));
    }

    /// <summary>The folders and files searched: EmbeddingPath's <paramref name="paths"/>, then
    /// SD_EMBEDDINGS'.</summary>
    /// <exception cref="NetworkPathNotFoundException">A path in <paramref name="paths"/> does not exist.</exception>
    public static NetworkFileLookup FindFiles(
        IEnumerable<string>? paths, Func<string, string?>? getEnvironmentVariable = null) =>
        new(paths, EmbeddingFile.Extensions, "EmbeddingPath", EnvironmentVariable, getEnvironmentVariable);

    public NetworkFileLookup Files { get; }

    /// <summary>The embeddings prompts have used so far, in the order first used.</summary>
    public IReadOnlyList<TextualInversionEmbedding> Used => _used;

    /// <summary>
    /// The embedding whose name's tokens start at <paramref name="position"/> of <paramref name="tokens"/> (the longest
    /// when several match), read on first use, and how many prompt tokens its name took; null when none.
    /// </summary>
    /// <exception cref="EmbeddingWidthException">The matched file's vectors do not fit the text encoder.</exception>
    /// <exception cref="EmbeddingFormatException">The matched file cannot be read as an embedding.</exception>
    public (TextualInversionEmbedding Embedding, int NameTokens)? Match(IReadOnlyList<int> tokens, int position)
    {
        if (!_byFirstToken.TryGetValue(tokens[position], out var candidates)) return null;
        foreach (var (ids, file) in candidates)
        {
            if (position + ids.Length > tokens.Count) continue;
            bool same = true;
            for (int k = 1; k < ids.Length && same; k++) same = tokens[position + k] == ids[k];
            if (same) return (Load(file), ids.Length);
        }
        return null;
    }

    private TextualInversionEmbedding Load(NetworkFile file)
    {
        if (!_loaded.TryGetValue(file.Path, out var embedding))
        {
            embedding = EmbeddingFile.Read(file.Path);
            if (embedding.Width != _width)
            {
                var (name, width) = (embedding.Name, embedding.Width);
                embedding.Dispose();
                throw new EmbeddingWidthException(name, file.Path, width, _width);
            }
            _loaded[file.Path] = embedding;
        }
        if (!_used.Contains(embedding)) _used.Add(embedding);
        return embedding;
    }

    public void Dispose()
    {
        foreach (var embedding in _loaded.Values) embedding.Dispose();
        _loaded.Clear();
        _used.Clear();
    }
}
