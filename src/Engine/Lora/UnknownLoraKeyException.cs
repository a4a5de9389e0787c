namespace PSStableDiffusion.Engine.Lora;

/// <summary>LoRA keys that map to no layer of the model (the strict loading rule, as for model weights).</summary>
public sealed class UnknownLoraKeyException(string filePath, IReadOnlyList<string> keys)
    : LoraException(filePath, $"'{filePath}' has {keys.Count} key(s) that map to no layer of this model: " +
        string.Join(", ", keys.Take(8)) + (keys.Count > 8 ? ", ..." : "") + ".")
{
    public IReadOnlyList<string> Keys { get; } = keys;
}
