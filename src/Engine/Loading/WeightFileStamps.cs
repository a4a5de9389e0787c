namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// The size and last-write time of a model's weight files when it was loaded. Weights are memory-mapped, so a file
/// rewritten or truncated in place under a loaded model can crash the process (SIGBUS on Linux) and a file replaced
/// (a re-download) leaves the model on the old weights: the engine cache compares these stamps at every acquire and
/// reloads a model whose files changed. Replacing a file while a generation runs on it is still unsafe.
/// </summary>
internal sealed class WeightFileStamps
{
    private readonly (string Path, long Length, DateTime WrittenUtc)[] _files;

    private WeightFileStamps((string, long, DateTime)[] files) => _files = files;

    /// <summary>Stamps <paramref name="paths"/> now (call it before reading them, so a change during the
    /// load shows).</summary>
    public static WeightFileStamps Take(IEnumerable<string> paths) =>
        new(paths.Select(path => Stamp(Path.GetFullPath(path))).ToArray());

    /// <summary>What changed since <see cref="Take"/>, in words; null when nothing did.</summary>
    public string? Changes()
    {
        foreach (var (path, length, written) in _files)
        {
            var now = Stamp(path);
            if (now.Length < 0) return $"'{path}' is gone";
            if (now.Length != length || now.WrittenUtc != written)
                return $"'{path}' changed ({length:N0} bytes written {written:u} " +
                    $"at load, now {now.Length:N0} bytes written {now.WrittenUtc:u})";
        }
        return null;
    }

    private static (string Path, long Length, DateTime WrittenUtc) Stamp(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? (path, info.Length, info.LastWriteTimeUtc) : (path, -1, default);
    }
}
