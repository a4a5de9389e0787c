using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>Downsample2D</c> with <c>use_conv=True</c>: a 3x3 stride-2 convolution. With padding 0 (the VAE
/// encoder) the input is first padded by one on the right and bottom only, as diffusers does.
/// </summary>
public sealed class Downsample2D : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly long _padding;

    public Downsample2D(long channels, long out_channels, long padding, Device? device = null, ScalarType? dtype = null)
        : base(nameof(Downsample2D))
    {
        conv = nn.Conv2d(channels, out_channels, 3, stride: 2, padding: padding, device: device, dtype: dtype);
        _padding = padding;
        RegisterComponents();
    }

    /// <param name="input">[B, C, H, W]</param>
    /// <returns>[B, C_out, H/2, W/2] (rounded up for padding 1, down for padding 0)</returns>
    public override Tensor forward(Tensor input)
    {
        if (_padding != 0) return conv.forward(input);
        using var scope = NewDisposeScope();
        var padded = nn.functional.pad(input, new long[] { 0, 1, 0, 1 }, PaddingModes.Constant, 0); // [B, C, H+1, W+1]
        return conv.forward(padded).MoveToOuterDisposeScope();
    }
}
