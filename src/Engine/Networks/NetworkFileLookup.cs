namespace PSStableDiffusion.Engine.Networks;

/// <summary>
/// "Name → file" for files that prompts name by their file name, as AUTOMATIC1111 finds embeddings and LoRAs: the paths
/// given (folders, searched with their subfolders, or single files), then the folders an environment variable lists
/// (separated by <see cref="System.IO.Path.PathSeparator"/>: ';' on Windows, ':' elsewhere). A name is the file name
/// without its extension; names compare without regard to case (Windows file names do not either). When two files have
/// one name, the first found wins (paths in the order given, then the variable's) and the other is reported in
/// <see cref="Shadowed"/>. Empty files are skipped, as AUTOMATIC1111 skips them. Nothing is opened: the callers read
/// the files they use.
/// </summary>
public sealed class NetworkFileLookup
{
    private readonly Dictionary<string, NetworkFile> _byName = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<NetworkFile> _files = new();
    private readonly List<NetworkFile> _shadowed = new();
    private readonly List<string> _missingFromVariable = new();
    private readonly List<string> _searched = new();

    /// <param name="paths">Folders or files; each must exist (<see cref="NetworkPathNotFoundException"/> names the
    /// first that does not).</param>
    /// <param name="extensions">The file extensions to take, with the dot (".safetensors"), any case.</param>
    /// <param name="parameterName">What named <paramref name="paths"/>, for messages (e.g. "EmbeddingPath").</param>
    /// <param name="environmentVariable">A variable listing more folders (e.g. SD_EMBEDDINGS); entries that do not
    /// exist are skipped and listed in <see cref="MissingFromVariable"/>.</param>
    /// <param name="getEnvironmentVariable">Reads the variable (tests pass their own); default: the process's.</param>
    public NetworkFileLookup(IEnumerable<string>? paths, IReadOnlyCollection<string> extensions, string parameterName,
        string? environmentVariable = null, Func<string, string?>? getEnvironmentVariable = null)
    {
        ArgumentNullException.ThrowIfNull(extensions);
        Extensions = extensions.ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var path in paths ?? [])
        {
            if (!File.Exists(path) && !Directory.Exists(path))
                throw new NetworkPathNotFoundException(path, parameterName);
            AddPath(path);
        }
        if (environmentVariable is null) return;
        foreach (var path in SplitPathList(
            (getEnvironmentVariable ?? Environment.GetEnvironmentVariable)(environmentVariable)))
        {
            if (File.Exists(path) || Directory.Exists(path)) AddPath(path);
            else _missingFromVariable.Add(path);
        }
    }

    /// <summary>The extensions taken (with the dot).</summary>
    public IReadOnlySet<string> Extensions { get; }

    /// <summary>Every usable file, one per name, in the order found.</summary>
    public IReadOnlyList<NetworkFile> Files => _files;

    /// <summary>Files hidden by an earlier file of the same name.</summary>
    public IReadOnlyList<NetworkFile> Shadowed => _shadowed;

    /// <summary>The folders and files searched, in order: the paths given, then the variable's that exist.</summary>
    public IReadOnlyList<string> Searched => _searched;

    /// <summary>Entries of the environment variable that name nothing on disk.</summary>
    public IReadOnlyList<string> MissingFromVariable => _missingFromVariable;

    /// <summary>The file for <paramref name="name"/> (any case), if one was found.</summary>
    public bool TryFind(string name, out NetworkFile file) => _byName.TryGetValue(name, out file!);

    /// <summary>The entries of a path list such as PATH: split at <see cref="System.IO.Path.PathSeparator"/>, trimmed,
    /// empty entries dropped.</summary>
    public static IReadOnlyList<string> SplitPathList(string? value) =>
        string.IsNullOrWhiteSpace(value)
            ? []
            : value.Split(
                System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private void AddPath(string path)
    {
        _searched.Add(path);
        if (File.Exists(path))
        {
            // A file named on purpose is taken whatever its extension; the reader then says whether it can read it.
            AddFile(System.IO.Path.GetFullPath(path));
            return;
        }
        var options = new EnumerationOptions
        {
            RecurseSubdirectories = true,
            IgnoreInaccessible = true,
            AttributesToSkip = FileAttributes.Hidden | FileAttributes.System
        };
        // Sorted so that which of two same-named files wins does not depend on the file system's order.
        var found = Directory.EnumerateFiles(path, "*", options)
            .Where(f => Extensions.Contains(System.IO.Path.GetExtension(f)))
            .OrderBy(f => f, StringComparer.Ordinal);
        foreach (var file in found) AddFile(System.IO.Path.GetFullPath(file));
    }

    private void AddFile(string fullPath)
    {
        if (new FileInfo(fullPath).Length == 0) return;
        var file = new NetworkFile(System.IO.Path.GetFileNameWithoutExtension(fullPath), fullPath);
        if (_byName.TryGetValue(file.Name, out var first))
        {
            if (!string.Equals(first.Path, fullPath, StringComparison.Ordinal)) _shadowed.Add(file);
            return;
        }
        _byName[file.Name] = file;
        _files.Add(file);
    }
}
