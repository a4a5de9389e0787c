using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

/// <summary>A down block of the UNet: returns its output and the skip states the matching up block consumes.</summary>
public abstract class UNetDownBlock : nn.Module
{
    protected UNetDownBlock(string name) : base(name) { }

    /// <param name="hidden">[B, C_in, H, W]</param>
    /// <param name="temb">[B, temb_channels]</param>
    /// <param name="context">[B, M, cross_attention_dim]; ignored by blocks without attention.</param>
    /// <returns>The skip states in order (one per resnet, plus the downsampled output); the last one is the
    /// block output.</returns>
    public abstract Tensor[] Forward(Tensor hidden, Tensor temb, Tensor context);
}
