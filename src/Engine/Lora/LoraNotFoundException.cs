namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA name found in none of the folders searched (<paramref name="searched"/>: LoraPath's, then
/// SD_LORA's); for a replayed record, with no file there having the recorded <paramref name="hash"/> either.</summary>
public sealed class LoraNotFoundException(string name, IReadOnlyList<string> searched, string? hash = null)
    : FileNotFoundException(Describe(name, searched, hash))
{
    public string Name { get; } = name;

    /// <summary>The short hash the record gives the LoRA (null when the call named it without one).</summary>
    public string? Hash { get; } = string.IsNullOrEmpty(hash) ? null : hash;

    private static string Describe(string name, IReadOnlyList<string> searched, string? hash)
    {
        var what = string.IsNullOrEmpty(hash)
            ? $"No LoRA named '{name}'"
            : $"No LoRA named '{name}' and no LoRA file with its recorded hash {hash}";
        return searched.Count == 0
            ? $"{what}: no LoRA folder is set (give one with " +
                $"LoraPath or the {LoraFile.EnvironmentVariable} environment variable)."
            : $"{what} in {string.Join(", ", searched)}.";
    }
}
