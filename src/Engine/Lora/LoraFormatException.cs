namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA file whose tensors do not form adapters: an up without its down, ranks that disagree, a tensor of
/// the wrong number of dimensions, a non-numeric alpha, or unreadable adapter metadata.</summary>
public sealed class LoraFormatException(string filePath, string problem)
    : LoraException(filePath, $"'{filePath}' is not a usable LoRA file: {problem}");
