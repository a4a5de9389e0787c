using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>Upsample2D</c> with <c>use_conv=True</c>: nearest-neighbour x2 (or to a given size), then a 3x3 convolution.</summary>
public sealed class Upsample2D : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public Upsample2D(long channels, long out_channels, Device? device = null, ScalarType? dtype = null) : base(nameof(Upsample2D))
    {
        conv = nn.Conv2d(channels, out_channels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="input">[B, C, H, W]</param>
    /// <returns>[B, C_out, 2H, 2W]</returns>
    public override Tensor forward(Tensor input) => Forward(input, null);

    /// <param name="input">[B, C, H, W]</param>
    /// <param name="size">Output (height, width); diffusers passes the skip connection's size when the latent is not a multiple of 2^levels.</param>
    /// <returns>[B, C_out, size or 2H x 2W]</returns>
    public Tensor Forward(Tensor input, long[]? size)
    {
        using var scope = NewDisposeScope();
        var upsampled = size is null
            ? nn.functional.interpolate(input, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest) // [B, C, 2H, 2W]
            : nn.functional.interpolate(input, size: size, mode: InterpolationMode.Nearest); // [B, C, size]
        return conv.forward(upsampled).MoveToOuterDisposeScope();
    }
}
