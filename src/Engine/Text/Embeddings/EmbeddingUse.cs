using PSStableDiffusion.Engine.Networks;

namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>The steps around a generation's prompt encoding that concern textual-inversion embeddings: which files
/// are available, and after encoding, what was used against what a replayed record expects.</summary>
public static class EmbeddingUse
{
    /// <summary>The library for a call: EmbeddingPath's <paramref name="paths"/> and SD_EMBEDDINGS; null when neither
    /// names anything. Missing SD_EMBEDDINGS entries are warned about; names given twice are logged.</summary>
    /// <exception cref="NetworkPathNotFoundException">A path in <paramref name="paths"/> does not exist.</exception>
    public static EmbeddingLibrary? Open(IReadOnlyList<string>? paths, ClipTokenizer tokenizer, int width,
        Action<string>? log, Action<string>? warn, Func<string, string?>? getEnvironmentVariable = null)
    {
        var files = EmbeddingLibrary.FindFiles(paths, getEnvironmentVariable);
        foreach (var missing in files.MissingFromVariable)
            warn?.Invoke(
                $"{EmbeddingLibrary.EnvironmentVariable} names '{missing}', which does not exist; it was skipped.");
        foreach (var shadowed in files.Shadowed)
            log?.Invoke(
                $"Embedding '{shadowed.Name}': '{shadowed.Path}' is hidden by an earlier file of the same name.");
        if (files.Files.Count == 0) return null;
        log?.Invoke(
            $"{files.Files.Count} textual-inversion embedding file(s) available; a prompt uses one by its file name.");
        return new EmbeddingLibrary(files, tokenizer, width);
    }

    /// <summary>
    /// What <paramref name="library"/> was used for, in A1111's order; logs each. Against a replayed record's
    /// <paramref name="expected"/> (name → short hash): a name that no file provides is an error, a file whose hash
    /// differs a warning.
    /// </summary>
    /// <exception cref="EmbeddingNotFoundException">A recorded embedding is not available.</exception>
    public static IReadOnlyList<UsedEmbedding> Finish(
        EmbeddingLibrary? library, IReadOnlyDictionary<string, string>? expected,
        Action<string>? log, Action<string>? warn)
    {
        var used = library?.Used.Select(e => new UsedEmbedding(e.Name, e.ShortHash)).ToList() ?? [];
        foreach (var e in library?.Used ?? [])
            log?.Invoke(
                $"Embedding '{e.Name}': {e.VectorCount} vector(s) from '{e.Path}' ({e.Format}, hash {e.ShortHash}).");
        foreach (var (name, hash) in expected ?? new Dictionary<string, string>())
        {
            var match = used.FirstOrDefault(u => string.Equals(
                RecordName(u.Name), RecordName(name), StringComparison.OrdinalIgnoreCase));
            if (match is null) throw new EmbeddingNotFoundException(name, string.IsNullOrEmpty(hash) ? null : hash);
            if (!string.IsNullOrEmpty(hash) && !match.ShortHash.StartsWith(hash, StringComparison.OrdinalIgnoreCase) &&
                !hash.StartsWith(match.ShortHash, StringComparison.OrdinalIgnoreCase))
                warn?.Invoke(
                    $"The embedding '{match.Name}' has hash {match.ShortHash}, but the image " +
                    $"was made with {hash}: another version of the file, so the image may differ.");
        }
        return used;
    }

    /// <summary>The name as A1111 writes it into "TI hashes" (it drops ':' and ',', which would break
    /// the field).</summary>
    public static string RecordName(string name) =>
        name.Replace(":", "", StringComparison.Ordinal).Replace(",", "", StringComparison.Ordinal);
}
