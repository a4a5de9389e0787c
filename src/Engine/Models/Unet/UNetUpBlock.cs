using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

/// <summary>An up block of the UNet: each resnet consumes one skip state from the down path (last first).</summary>
public abstract class UNetUpBlock : nn.Module
{
    protected UNetUpBlock(string name) : base(name) { }

    /// <summary>How many skip states this block consumes (= its number of resnets).</summary>
    public abstract int SkipCount { get; }

    /// <param name="hidden">[B, C_prev, H, W]</param>
    /// <param name="skips">This block's skip states in down-path order; consumed from the end.</param>
    /// <param name="temb">[B, temb_channels]</param>
    /// <param name="context">[B, M, cross_attention_dim]; ignored by blocks without attention.</param>
    /// <param name="upsampleSize">Target (height, width) of the upsampler, or null for x2.</param>
    /// <returns>[B, C_out, H', W'] (H' = 2H or upsampleSize when the block upsamples)</returns>
    public abstract Tensor Forward(
        Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize);
}
