namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA made for another model: its layer widths, kernel sizes or ranks do not fit this model's layers
/// (an SD 1.x LoRA, 768 wide in the text encoder, on an SD 2.x model, 1024 wide, say).</summary>
public sealed class LoraModelMismatchException(string filePath, string layer, string reason)
    : LoraException(filePath, $"'{filePath}' does not fit this model: {layer}: {reason}")
{
    public string Layer { get; } = layer;
}
