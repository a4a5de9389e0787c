using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using PSStableDiffusion.Engine.Imaging;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Remembers the SHA-256 of a model's weight files across sessions, keyed by each file's full path, size and last
/// write time (as AUTOMATIC1111's hash cache does), so the first image of a session does not re-read gigabytes to
/// record the model hash (about 4.6 s for the 5.2 GB SD 2.1 folder on the build machine). A file rewritten in place
/// with the same size and time stamp would keep its old hash; anything else recomputes it. The cache is a convenience:
/// an unreadable, corrupt or unwritable cache file is ignored, never an error.
/// </summary>
public sealed class ModelHashCache
{
    /// <summary>Environment variable that moves the cache folder (CI, tests, read-only homes).</summary>
    public const string FolderVariable = Runtime.CacheFolder.Variable;

    // Bounded so a long-lived cache does not grow without end, but large enough for a LoRA folder of a few thousand
    // files: a replay that looks a renamed LoRA up by its hash hashes the folder, and an eviction would make every such
    // replay read the whole folder again.
    private const int MaxEntries = 4096;
    private static readonly object FileLock = new();

    /// <param name="path">The JSON file the hashes live in.</param>
    public ModelHashCache(string path) => FilePath = path;

    /// <summary><c>$PSSTABLEDIFFUSION_CACHE/model-hashes.json</c>, else the user's local application data folder
    /// (<c>%LOCALAPPDATA%\PSStableDiffusion</c> on Windows, <c>~/.local/share/PSStableDiffusion</c> on
    /// Linux).</summary>
    public static ModelHashCache Default => new(Path.Combine(Runtime.CacheFolder.Path, "model-hashes.json"));

    public string FilePath { get; }

    /// <summary>
    /// The SHA-256 over <paramref name="files"/> (the first 10 hex digits are what AUTOMATIC1111 shows as "Model
    /// hash"), taken from <see cref="Default"/> while the files are unchanged: the session's first image records it,
    /// and the cache spares re-reading gigabytes in every new session.
    /// </summary>
    public static string HashModel(IReadOnlyList<string> files) => Default.GetOrCompute(files, () => HashFiles(files));

    /// <summary>The SHA-256 over the bytes of <paramref name="files"/>, in order (lower-case hex).</summary>
    public static string HashFiles(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var stream = new FileStream(
                file, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The cached hash of <paramref name="files"/> (in this order) while none of them changed; else
    /// <paramref name="compute"/>'s, which is then stored. <paramref name="kind"/> names a hash other than the SHA-256
    /// of the bytes (such as a LoRA's AUTOMATIC1111 hash), so the same file can have both.</summary>
    public string GetOrCompute(IReadOnlyList<string> files, Func<string> compute, string? kind = null)
    {
        var identity = Key(files);
        if (identity is null) return compute(); // a file vanished: let the hash itself report it
        var key = kind is null ? identity : $"{kind}:{identity}";
        lock (FileLock)
        {
            if (Read().TryGetValue(key, out var cached)) return cached;
        }
        var hash = compute();
        lock (FileLock)
        {
            var entries = Read();
            entries[key] = hash;
            // Oldest first in the file (insertion order); a long-lived cache keeps the most recent models only.
            while (entries.Count > MaxEntries) entries.Remove(entries.Keys.First());
            TryWrite(entries);
        }
        return hash;
    }

    // "path|size|ticks" per file, joined by newlines: any change to a file's identity makes another key.
    private static string? Key(IReadOnlyList<string> files)
    {
        var key = new StringBuilder();
        foreach (var file in files)
        {
            var info = new FileInfo(file);
            if (!info.Exists) return null;
            key.Append(info.FullName).Append('|').Append(info.Length.ToString(CultureInfo.InvariantCulture))
                .Append('|').Append(info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return key.ToString();
    }

    private Dictionary<string, string> Read()
    {
        try
        {
            if (!File.Exists(FilePath)) return new(StringComparer.Ordinal);
            var entries = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(FilePath));
            return entries is null ? new(StringComparer.Ordinal) : new(entries, StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return new(StringComparer.Ordinal);
        }
    }

    private void TryWrite(Dictionary<string, string> entries)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
            AtomicFile.Write(FilePath, JsonSerializer.SerializeToUtf8Bytes(entries));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Read-only home or a full disk: the hash is still right, only not remembered.
        }
    }
}
