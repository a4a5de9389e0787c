using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.SingleFile;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>A model layer a LoRA layer changes: rows <c>Chunk·n .. (Chunk+1)·n</c> of its update when the LoRA layer
/// covers several model layers (OpenCLIP's fused q/k/v <c>in_proj</c> = the text encoder's q_proj,
/// k_proj, v_proj).</summary>
/// <param name="Module">The diffusers / transformers module path, e.g.
/// <c>down_blocks.0.attentions.0.proj_in</c>.</param>
/// <param name="Layer">The Linear or Conv2d itself.</param>
public sealed record LoraTarget(LoraPart Part, string Module, nn.Module Layer, int Chunk = 0, int Chunks = 1);
