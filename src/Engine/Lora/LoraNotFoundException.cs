namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA name found in none of the folders searched (<paramref name="searched"/>: LoraPath's, then
/// SD_LORA's).</summary>
public sealed class LoraNotFoundException(string name, IReadOnlyList<string> searched)
    : FileNotFoundException(searched.Count == 0
        ? $"No LoRA named '{name}': no LoRA folder is set (give one with " +
            $"LoraPath or the {LoraFile.EnvironmentVariable} environment variable)."
        : $"No LoRA named '{name}' in {string.Join(", ", searched)}.")
{
    public string Name { get; } = name;
}
