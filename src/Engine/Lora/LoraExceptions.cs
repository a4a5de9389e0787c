namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA file that cannot be applied; <see cref="FilePath"/> names it.</summary>
public abstract class LoraException(string filePath, string message) : Exception(message)
{
    public string FilePath { get; } = filePath;
}

/// <summary>A LoRA file whose tensors do not form adapters: an up without its down, ranks that disagree, a tensor of
/// the wrong number of dimensions, a non-numeric alpha, or unreadable adapter metadata.</summary>
public sealed class LoraFormatException(string filePath, string problem)
    : LoraException(filePath, $"'{filePath}' is not a usable LoRA file: {problem}");

/// <summary>LoRA keys that map to no layer of the model (the strict loading rule, as for model weights).</summary>
public sealed class UnknownLoraKeyException(string filePath, IReadOnlyList<string> keys)
    : LoraException(filePath, $"'{filePath}' has {keys.Count} key(s) that map to no layer of this model: " +
        string.Join(", ", keys.Take(8)) + (keys.Count > 8 ? ", ..." : "") + ".")
{
    public IReadOnlyList<string> Keys { get; } = keys;
}

/// <summary>A LoRA made for another model: its layer widths, kernel sizes or ranks do not fit this model's layers
/// (an SD 1.x LoRA, 768 wide in the text encoder, on an SD 2.x model, 1024 wide, say).</summary>
public sealed class LoraModelMismatchException(string filePath, string layer, string reason)
    : LoraException(filePath, $"'{filePath}' does not fit this model: {layer}: {reason}")
{
    public string Layer { get; } = layer;
}
