namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// Finds LoRA files by name in folders (searched with their subfolders, in the order given): the <c>-LoraPath</c>
/// folders, then <c>SD_LORA</c>'s.
/// </summary>
public static class LoraCatalog
{
    /// <summary>The environment variable holding LoRA folders, separated as PATH is.</summary>
    public const string EnvironmentVariable = "SD_LORA";

    /// <summary><paramref name="folders"/> followed by the folders of <see cref="EnvironmentVariable"/>.</summary>
    public static IReadOnlyList<string> Folders(IEnumerable<string> folders) =>
        folders.Concat((Environment.GetEnvironmentVariable(EnvironmentVariable) ?? "")
                .Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Where(Directory.Exists).Distinct().ToList();

    /// <summary>Every LoRA file in <paramref name="folders"/>, folder by folder, sorted by path within each.</summary>
    public static IEnumerable<string> Files(IEnumerable<string> folders) =>
        folders.SelectMany(folder => Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => LoraFile.Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
            .Order(StringComparer.Ordinal));

    /// <summary>The first file named <paramref name="name"/> (without extension, case-insensitively); null when none.</summary>
    public static string? Find(string name, IEnumerable<string> folders) =>
        Files(folders).FirstOrDefault(f => string.Equals(System.IO.Path.GetFileNameWithoutExtension(f), name, StringComparison.OrdinalIgnoreCase));
}
