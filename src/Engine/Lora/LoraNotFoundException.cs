namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA name found in none of the folders searched.</summary>
public sealed class LoraNotFoundException(string name, IReadOnlyList<string> folders)
    : FileNotFoundException(folders.Count == 0
        ? $"No LoRA named '{name}': no LoRA folder is set (give one with LoraPath or the {LoraCatalog.EnvironmentVariable} environment variable)."
        : $"No LoRA named '{name}' in {string.Join(", ", folders)}.")
{
    public string Name { get; } = name;
}
