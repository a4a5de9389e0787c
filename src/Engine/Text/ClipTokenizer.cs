using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// CLIP byte-level BPE tokenizer, behaving like Hugging Face's <c>CLIPTokenizer</c> (the slow one, with ftfy) as
/// Stable Diffusion pipelines call it: padding to max length, truncation that keeps the end token.
/// Special tokens (BOS, EOS/UNK, the pad token — <c>!</c> in SD 2.x) are split out of the text first and become their
/// own ids; the remaining pieces are cleaned (<see cref="ClipTextCleaner"/>), split with CLIP's pattern and BPE-merged.
/// Thread-safe after construction.
/// </summary>
public sealed class ClipTokenizer
{
    private const string WordEnd = "</w>";

    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _idToToken;
    private readonly Dictionary<(string, string), int> _mergeRanks;
    private readonly string[] _specialTokens; // longest first, for splitting
    private readonly HashSet<int> _specialIds;
    private readonly ConcurrentDictionary<string, string[]> _bpeCache = new(StringComparer.Ordinal);
    private static readonly string[] ByteToChar = BuildByteAlphabet();
    private static readonly Dictionary<char, byte> CharToByte =
        ByteToChar.Select((s, b) => (s[0], (byte)b)).ToDictionary(p => p.Item1, p => p.Item2);

    private ClipTokenizer(Dictionary<string, int> vocab, Dictionary<(string, string), int> mergeRanks,
        string bos, string eos, string unk, string pad, IEnumerable<string> extraSpecial, int modelMaxLength)
    {
        _vocab = vocab;
        _mergeRanks = mergeRanks;
        _idToToken = new string[vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) _idToToken[id] = token;
        BosTokenId = IdOf(bos, "bos_token");
        EosTokenId = IdOf(eos, "eos_token");
        UnkTokenId = IdOf(unk, "unk_token");
        PadTokenId = IdOf(pad, "pad_token");
        ModelMaxLength = modelMaxLength;
        _specialTokens = new[] { bos, eos, unk, pad }.Concat(extraSpecial).Where(t => t.Length > 0)
            .Distinct(StringComparer.Ordinal).OrderByDescending(t => t.Length).ToArray();
        _specialIds = _specialTokens.Select(t => IdOf(t, "special token")).ToHashSet();
        // The reference BPE returns these two unchanged even when they reach it as plain text.
        _bpeCache[bos] = [bos];
        _bpeCache[eos] = [eos];
    }

    /// <summary>Length of every encoding, BOS and EOS included (77 for CLIP).</summary>
    public int ModelMaxLength { get; }
    public int BosTokenId { get; }
    public int EosTokenId { get; }
    public int UnkTokenId { get; }
    public int PadTokenId { get; }
    public int VocabSize => _idToToken.Length;

    /// <summary>Loads <c>vocab.json</c>, <c>merges.txt</c>, <c>special_tokens_map.json</c> and
    /// <c>tokenizer_config.json</c>.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed; the message names it.</exception>
    public static ClipTokenizer FromFolder(string folder)
    {
        string vocabPath = Path.Combine(folder, "vocab.json");
        string mergesPath = Path.Combine(folder, "merges.txt");
        if (!File.Exists(vocabPath))
            throw new FileNotFoundException($"CLIP tokenizer vocabulary not found: {vocabPath}", vocabPath);
        if (!File.Exists(mergesPath))
            throw new FileNotFoundException($"CLIP tokenizer merges not found: {mergesPath}", mergesPath);

        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath))
                ?? throw new InvalidDataException($"{vocabPath}: empty vocabulary");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{vocabPath}: not a JSON object of token → id ({e.Message})", e);
        }

        var merges = new Dictionary<(string, string), int>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(mergesPath))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)))
                continue;
            var parts = line.Split(' ');
            if (parts.Length != 2)
                throw new InvalidDataException($"{mergesPath}:{lineNumber}: expected two symbols, got '{line}'");
            merges.TryAdd((parts[0], parts[1]), merges.Count);
        }

        var config = ReadJsonObject(Path.Combine(folder, "tokenizer_config.json"));
        var specialMap = ReadJsonObject(Path.Combine(folder, "special_tokens_map.json"));
        string Token(string key, string fallback) =>
            TokenContent(specialMap, key) ?? TokenContent(config, key) ?? fallback;

        var extra = new List<string>();
        if (specialMap is { } map
            && map.TryGetProperty("additional_special_tokens", out var additional)
            && additional.ValueKind == JsonValueKind.Array)
            extra.AddRange(additional.EnumerateArray().Select(TokenText).OfType<string>());
        if (config is { } cfg
            && cfg.TryGetProperty("added_tokens_decoder", out var added) && added.ValueKind == JsonValueKind.Object)
            extra.AddRange(added.EnumerateObject().Select(p => TokenText(p.Value)).OfType<string>());

        int maxLength = config is { } c && c.TryGetProperty("model_max_length", out var m) && m.TryGetInt32(out int n)
            && n is > 2 and < 100_000 ? n : 77;
        return new ClipTokenizer(vocab, merges,
            Token("bos_token", "<|startoftext|>"), Token("eos_token", "<|endoftext|>"),
            Token("unk_token", "<|endoftext|>"), Token("pad_token", "<|endoftext|>"), extra, maxLength);
    }

    /// <summary>Ids of <paramref name="text"/>: BOS, at most <see cref="ModelMaxLength"/> − 2 text tokens, EOS,
    /// then padding.</summary>
    public int[] Encode(string text) => EncodeWithInfo(text).Ids;

    /// <summary>One <see cref="Encode"/> per prompt.</summary>
    public int[][] EncodeBatch(IEnumerable<string> texts) => texts.Select(Encode).ToArray();

    /// <summary>Like <see cref="Encode"/>, also saying whether (and what) truncation removed.</summary>
    public ClipEncoding EncodeWithInfo(string text)
    {
        var tokens = TextTokenIds(text);
        int room = ModelMaxLength - 2;
        var ids = new int[ModelMaxLength];
        Array.Fill(ids, PadTokenId);
        ids[0] = BosTokenId;
        int kept = Math.Min(room, tokens.Count);
        for (int i = 0; i < kept; i++) ids[1 + i] = tokens[i];
        ids[1 + kept] = EosTokenId;
        bool truncated = tokens.Count > room;
        return new ClipEncoding(ids, tokens.Count, truncated, truncated ? Decode(tokens.Skip(room)) : "");
    }

    /// <summary>BOS, every text token, EOS: no truncation, no padding.</summary>
    public int[] EncodeUntruncated(string text) => [BosTokenId, .. TextTokenIds(text), EosTokenId];

    /// <summary>The ids of the text tokens alone: no BOS, no EOS, no truncation, no padding.</summary>
    public IReadOnlyList<int> EncodeText(string text) => TextTokenIds(text);

    /// <summary>The id of one vocabulary entry (byte-level alphabet, "&lt;/w&gt;" ends a word), or null.</summary>
    public int? TokenId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>The BPE token strings of <paramref name="text"/> (byte-level alphabet, "&lt;/w&gt;" ends a word),
    /// no BOS/EOS.</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        foreach (var (piece, isSpecial) in SplitSpecial(text))
        {
            if (isSpecial) { tokens.Add(piece); continue; }
            foreach (var word in PreTokenize(ClipTextCleaner.Clean(piece))) tokens.AddRange(Bpe(ToByteAlphabet(word)));
        }
        return tokens;
    }

    /// <summary>Text of <paramref name="ids"/> as Hugging Face decodes it (word ends become spaces).</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not { } token) continue;
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            foreach (char c in token.Replace(WordEnd, " ", StringComparison.Ordinal))
            {
                if (CharToByte.TryGetValue(c, out byte b)) bytes.Add(b);
                else bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray()).Trim();
    }

    private List<int> TextTokenIds(string text) =>
        Tokenize(text).Select(t => _vocab.TryGetValue(t, out int id) ? id : UnkTokenId).ToList();

    /// <summary>Splits out special tokens (exact, case-sensitive matches, longest first), like the
    /// reference's trie.</summary>
    private IEnumerable<(string Piece, bool IsSpecial)> SplitSpecial(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            foreach (var special in _specialTokens)
            {
                if (string.CompareOrdinal(text, i, special, 0, special.Length) != 0 || i + special.Length > text.Length)
                    continue;
                if (i > start) yield return (text[start..i], false);
                yield return (special, true);
                i += special.Length - 1;
                start = i + 1;
                break;
            }
        }
        if (start < text.Length) yield return (text[start..], false);
    }

    /// <summary>
    /// CLIP's split pattern on cleaned text, by code point: the two special tokens, the contractions
    /// 's 't 're 've 'm 'll 'd, a run of letters, a single number character, or a run of anything else that is not
    /// whitespace; whitespace separates and is dropped.
    /// </summary>
    private static IEnumerable<string> PreTokenize(string text)
    {
        var runes = text.EnumerateRunes().ToArray();
        var offsets = new int[runes.Length + 1];
        for (int i = 0; i < runes.Length; i++) offsets[i + 1] = offsets[i] + runes[i].Utf16SequenceLength;
        string Slice(int from, int to) => text[offsets[from]..offsets[to]];

        int p = 0;
        while (p < runes.Length)
        {
            var rune = runes[p];
            string rest = text[offsets[p]..];
            if (rest.StartsWith("<|startoftext|>", StringComparison.Ordinal)
                || rest.StartsWith("<|endoftext|>", StringComparison.Ordinal))
            {
                string special = rest.StartsWith("<|s", StringComparison.Ordinal) ? "<|startoftext|>" : "<|endoftext|>";
                yield return special;
                p += special.Length; // ASCII: one rune per char
                continue;
            }
            if (rune.Value == '\'' && MatchContraction(rest) is { } contraction)
            {
                yield return contraction;
                p += contraction.Length;
                continue;
            }
            int end = p + 1;
            if (IsLetter(rune))
            {
                while (end < runes.Length && IsLetter(runes[end])) end++;
                yield return Slice(p, end);
            }
            else if (IsNumber(rune))
            {
                yield return Slice(p, end);
            }
            else if (!ClipTextCleaner.IsPythonSpace(rune))
            {
                while (end < runes.Length
                        && !IsLetter(runes[end]) && !IsNumber(runes[end]) && !ClipTextCleaner.IsPythonSpace(runes[end]))
                    end++;
                yield return Slice(p, end);
            }
            p = end;
        }
    }

    private static readonly string[] Contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    private static string? MatchContraction(string rest)
    {
        foreach (var contraction in Contractions)
            if (rest.StartsWith(contraction, StringComparison.OrdinalIgnoreCase)) return rest[..contraction.Length];
        return null;
    }

    private static bool IsLetter(Rune rune) => Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune rune) => Rune.GetUnicodeCategory(rune) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static string ToByteAlphabet(string word)
    {
        var builder = new StringBuilder();
        foreach (byte b in Encoding.UTF8.GetBytes(word)) builder.Append(ByteToChar[b]);
        return builder.ToString();
    }

    /// <summary>Byte-pair merges of one word (lowest merge rank first); the last symbol carries "&lt;/w&gt;".</summary>
    private string[] Bpe(string word)
    {
        if (_bpeCache.TryGetValue(word, out var cached)) return cached;
        var symbols = new List<string>(word.Length);
        for (int i = 0; i < word.Length; i++) symbols.Add(word[i].ToString());
        symbols[^1] += WordEnd;

        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue;
            (string, string) bestPair = default;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (_mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    bestPair = (symbols[i], symbols[i + 1]);
                }
            }
            if (bestRank == int.MaxValue) break;
            // Merge every occurrence of the best pair, left to right.
            var merged = new List<string>(symbols.Count);
            for (int i = 0; i < symbols.Count; i++)
            {
                if (i + 1 < symbols.Count && symbols[i] == bestPair.Item1 && symbols[i + 1] == bestPair.Item2)
                {
                    merged.Add(symbols[i] + symbols[i + 1]);
                    i++;
                }
                else merged.Add(symbols[i]);
            }
            symbols = merged;
        }
        var result = symbols.ToArray();
        _bpeCache[word] = result;
        return result;
    }

    /// <summary>GPT-2's reversible byte → printable character table.</summary>
    private static string[] BuildByteAlphabet()
    {
        var table = new string[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = ((char)(printable ? b : next++)).ToString();
        }
        return table;
    }

    private int IdOf(string token, string role) =>
        _vocab.TryGetValue(token, out int id)
            ? id : throw new InvalidDataException($"{role} '{token}' is not in the vocabulary");

    private static JsonElement? ReadJsonObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.Clone() : null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    private static string? TokenContent(JsonElement? obj, string key) =>
        obj is { } o && o.TryGetProperty(key, out var value) ? TokenText(value) : null;

    /// <summary>A token given as a plain string or as an AddedToken object with "content".</summary>
    private static string? TokenText(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => value.GetString(),
        JsonValueKind.Object when value.TryGetProperty("content", out var content)
            && content.ValueKind == JsonValueKind.String => content.GetString(),
        _ => null,
    };
}
