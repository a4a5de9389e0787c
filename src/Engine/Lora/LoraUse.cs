namespace PSStableDiffusion.Engine.Lora;

/// <summary>A LoRA a call applied, as the record keeps it.</summary>
/// <param name="Hash">AUTOMATIC1111's short hash (<see cref="LoraFile.ShortHash"/>).</param>
public sealed record LoraUse(string Name, string Hash, string? Path = null, double TextEncoderMultiplier = 1.0,
    double UnetMultiplier = 1.0, bool FromPrompt = false);
