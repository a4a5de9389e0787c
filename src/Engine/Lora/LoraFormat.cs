using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.SingleFile;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>How a LoRA file names its layers.</summary>
public enum LoraFormat
{
    /// <summary>kohya-ss / AUTOMATIC1111: <c>lora_unet_…</c>, <c>lora_te_…</c> with
    /// <c>.lora_down/.lora_up/.alpha</c>.</summary>
    Kohya,
    /// <summary>diffusers / PEFT: <c>unet.….lora_A.weight</c>, <c>text_encoder.….lora_B.weight</c>.</summary>
    Peft,
    /// <summary>diffusers before PEFT: <c>….lora.down.weight</c>, <c>….processor.to_q_lora.down.weight</c>.</summary>
    DiffusersOld,
}
