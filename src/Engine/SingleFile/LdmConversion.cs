using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>How a checkpoint tensor becomes a module tensor.</summary>
public enum LdmConversion
{
    /// <summary>Same values, same shape.</summary>
    Copy,
    /// <summary>A 1×1 convolution weight [C, C, 1, 1] becomes a Linear weight [C, C] (VAE mid-block
    /// attention).</summary>
    Conv1x1ToLinear,
    /// <summary>Rows <c>Chunk × n .. (Chunk+1) × n</c> of a stacked tensor (OpenCLIP's fused q/k/v
    /// <c>in_proj</c>).</summary>
    RowChunk,
}
