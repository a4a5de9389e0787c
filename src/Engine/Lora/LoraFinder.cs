using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Networks;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>How <see cref="LoraFinder"/> found a LoRA's file.</summary>
public enum LoraFoundBy
{
    /// <summary>By its name (or recorded path): no hash was recorded, or the file has the recorded one.</summary>
    Name,

    /// <summary>By the recorded hash: no file has the name, or the named file has another hash.</summary>
    Hash,

    /// <summary>By its name, although the file has another hash than the recorded one and no file in the folders
    /// has that hash: another version of the file, so the image may differ.</summary>
    NameWithOtherHash,
}

/// <summary>The file <see cref="LoraFinder.Find"/> chose.</summary>
/// <param name="Hash">Its short hash, where the choice needed it (a recorded hash was compared).</param>
public sealed record LoraFound(string Path, LoraFoundBy FoundBy, string? Hash = null);

/// <summary>
/// Finds the file of a LoRA that a replayed record names by name and short hash ("Lora hashes"), across machines where
/// LoRA files are named differently, as AUTOMATIC1111 does when infotext is pasted (its Lora extension's
/// <c>infotext_pasted</c> looks each tag's recorded hash up among all available LoRAs,
/// <c>available_network_hash_lookup</c>, and puts that file's name into the tag): the named file when it has the
/// recorded hash; else a file of the folders with that hash; else the named file with another hash (AUTOMATIC1111 then
/// uses the name too); else <see cref="LoraNotFoundException"/> naming the name and the hash. Hashes come from
/// <see cref="LoraFile.ShortHashOf"/>, cached per file, so a folder is read once across sessions; the search stops at
/// the first file with the hash.
/// </summary>
public sealed class LoraFinder
{
    private readonly Lazy<NetworkFileLookup> _files;
    private readonly ModelHashCache? _cache;

    /// <param name="files">The LoRA folders (<see cref="LoraFile.FindFiles"/>); opened only when a name or hash must
    /// be looked up there.</param>
    /// <param name="cache">Where the hashes are remembered (default <see cref="ModelHashCache.Default"/>).</param>
    public LoraFinder(Func<NetworkFileLookup> files, ModelHashCache? cache = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        _files = new Lazy<NetworkFileLookup>(files);
        _cache = cache;
    }

    /// <summary>The file for the LoRA <paramref name="name"/>.</summary>
    /// <param name="recordedHash">The short hash the replayed record gives it (10 or 12 hex digits); null or empty for
    /// a lookup by name alone.</param>
    /// <param name="recordedPath">The file the record names (ours do); tried before the folders' file of the
    /// name.</param>
    /// <param name="log">Told which file was chosen and why, when the name alone did not decide.</param>
    /// <param name="progress">Told (files hashed, files to hash) while the folders are searched for the hash.</param>
    /// <exception cref="LoraNotFoundException">No file has the name, nor the recorded hash.</exception>
    /// <exception cref="OperationCanceledException">Cancelled between two files.</exception>
    public LoraFound Find(string name, string? recordedHash = null, string? recordedPath = null,
        Action<string>? log = null, Action<int, int>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (string.IsNullOrEmpty(recordedHash))
        {
            // Without a hash the recorded file alone decides, as before hashes were compared.
            var named = NamedFiles(name, recordedPath).FirstOrDefault();
            return named is not null
                ? new LoraFound(named, LoraFoundBy.Name)
                : throw new LoraNotFoundException(name, _files.Value.Searched);
        }
        var namedHashes = new List<(string Path, string Hash)>();
        foreach (var path in NamedFiles(name, recordedPath))
        {
            var hash = LoraFile.ShortHashOf(path, _cache);
            if (LoraFile.SameHash(recordedHash, hash)) return new LoraFound(path, LoraFoundBy.Name, hash);
            namedHashes.Add((path, hash));
        }
        var byHash = FindByHash(recordedHash, namedHashes.Select(n => n.Path).ToList(), log, progress, cancellation);
        if (byHash is not null)
        {
            log?.Invoke(namedHashes.Count == 0
                ? $"LoRA '{name}': no file of that name; '{byHash.Path}' has its recorded hash {recordedHash}, so " +
                    "it is used."
                : $"LoRA '{name}': '{namedHashes[0].Path}' has hash {namedHashes[0].Hash}, not the recorded " +
                    $"{recordedHash}; '{byHash.Path}' has the recorded hash, so it is used.");
            return byHash;
        }
        if (namedHashes.Count == 0) throw new LoraNotFoundException(name, _files.Value.Searched, recordedHash);
        var (namedPath, namedHash) = namedHashes[0];
        log?.Invoke(
            $"LoRA '{name}': no file in the LoRA folders has the recorded hash {recordedHash}; using '{namedPath}' " +
            $"(hash {namedHash}), as AUTOMATIC1111 does.");
        return new LoraFound(namedPath, LoraFoundBy.NameWithOtherHash, namedHash);
    }

    /// <summary>The recorded file (when it exists), then the folders' file of the name (when found and another),
    /// lazily: the folders are searched only when the recorded file does not do.</summary>
    private IEnumerable<string> NamedFiles(string name, string? recordedPath)
    {
        string? recorded = !string.IsNullOrEmpty(recordedPath) && File.Exists(recordedPath)
            ? Path.GetFullPath(recordedPath) : null;
        if (recorded is not null) yield return recorded;
        if (_files.Value.TryFind(name, out var found) && !string.Equals(found.Path, recorded, StringComparison.Ordinal))
            yield return found.Path;
    }

    /// <summary>The first file of the folders (those hidden by a same-named file too) with <paramref name="hash"/>,
    /// in the folders' order; files that cannot be read are passed over.</summary>
    private LoraFound? FindByHash(string hash, IReadOnlyList<string> skip, Action<string>? log,
        Action<int, int>? progress, CancellationToken cancellation)
    {
        var candidates = _files.Value.Files.Concat(_files.Value.Shadowed)
            .Select(f => f.Path)
            .Where(p => !skip.Contains(p, StringComparer.Ordinal))
            .ToList();
        for (int i = 0; i < candidates.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            progress?.Invoke(i, candidates.Count);
            string actual;
            try
            {
                actual = LoraFile.ShortHashOf(candidates[i], _cache);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log?.Invoke($"LoRA file '{candidates[i]}' could not be read to compare its hash ({e.Message}).");
                continue;
            }
            if (LoraFile.SameHash(hash, actual)) return new LoraFound(candidates[i], LoraFoundBy.Hash, actual);
        }
        progress?.Invoke(candidates.Count, candidates.Count);
        return null;
    }
}
