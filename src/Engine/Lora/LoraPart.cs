namespace PSStableDiffusion.Engine.Lora;

/// <summary>Which network of the model a LoRA layer changes.</summary>
public enum LoraPart
{
    Unet,
    TextEncoder,
}
