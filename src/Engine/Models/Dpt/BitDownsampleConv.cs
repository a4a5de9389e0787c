using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitDownsampleConv</c> (non-pre-activation): the shortcut of a stage's first block,
/// a 1×1 weight-standardised convolution with the stage's stride, then GroupNorm without activation.</summary>
public sealed class BitDownsampleConv : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly WeightStandardizedConv2d conv;
    private readonly GroupNorm norm;
#pragma warning restore IDE1006

    public BitDownsampleConv(
        BitConfig config, long inChannels, long outChannels, long stride, Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(BitDownsampleConv))
    {
        conv = new WeightStandardizedConv2d(
            inChannels, outChannels, 1, stride, config.SamePadding, 1e-8, device, dtype);
        norm = BitGroupNormActivation.Create(config, outChannels, device, dtype);
        RegisterComponents();
    }

    /// <param name="input">[B, in, H, W]</param>
    /// <returns>[B, out, ceil(H / stride), ceil(W / stride)]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return BitGroupNormActivation.Forward(norm, conv.forward(input), activation: false).MoveToOuterDisposeScope();
    }
}
