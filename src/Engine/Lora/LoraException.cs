namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA file that cannot be applied; <see cref="FilePath"/> names it.</summary>
public abstract class LoraException(string filePath, string message) : Exception(message)
{
    public string FilePath { get; } = filePath;
}
