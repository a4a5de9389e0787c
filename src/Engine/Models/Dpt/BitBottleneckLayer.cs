using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>BitBottleneckLayer</c> (ResNet v1.5 bottleneck, used by ViT-Hybrid): 1×1 → 3×3 (the stride sits
/// here) → 1×1 weight-standardised convolutions, each followed by GroupNorm (+ ReLU except the last), a shortcut
/// (projected in a stage's first block) and ReLU after the sum.
/// </summary>
public sealed class BitBottleneckLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly BitDownsampleConv? downsample;
    private readonly WeightStandardizedConv2d conv1;
    private readonly GroupNorm norm1;
    private readonly WeightStandardizedConv2d conv2;
    private readonly GroupNorm norm2;
    private readonly WeightStandardizedConv2d conv3;
    private readonly GroupNorm norm3;
#pragma warning restore IDE1006

    public BitBottleneckLayer(BitConfig config, long inChannels, long outChannels, long stride, bool isFirstLayer,
        Device? device = null, ScalarType? dtype = null) : base(nameof(BitBottleneckLayer))
    {
        long middle = BitConfig.MakeDivisible(outChannels * 0.25);
        if (isFirstLayer) downsample = new BitDownsampleConv(config, inChannels, outChannels, stride, device, dtype);
        conv1 = new WeightStandardizedConv2d(inChannels, middle, 1, 1, config.SamePadding, 1e-8, device, dtype);
        norm1 = BitGroupNormActivation.Create(config, middle, device, dtype);
        conv2 = new WeightStandardizedConv2d(middle, middle, 3, stride, config.SamePadding, 1e-8, device, dtype);
        norm2 = BitGroupNormActivation.Create(config, middle, device, dtype);
        conv3 = new WeightStandardizedConv2d(middle, outChannels, 1, 1, config.SamePadding, 1e-8, device, dtype);
        norm3 = BitGroupNormActivation.Create(config, outChannels, device, dtype);
        RegisterComponents();
    }

    /// <param name="input">[B, in, H, W]</param>
    /// <returns>[B, out, ceil(H / stride), ceil(W / stride)]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var shortcut = downsample is null ? input : downsample.forward(input); // [B, out, H', W']
        var hidden = BitGroupNormActivation.Forward(norm1, conv1.forward(input), activation: true); // [B, mid, H, W]
        hidden = BitGroupNormActivation.Forward(norm2, conv2.forward(hidden), activation: true); // [B, mid, H', W']
        hidden = BitGroupNormActivation.Forward(norm3, conv3.forward(hidden), activation: false); // [B, out, H', W']
        return nn.functional.relu(hidden.ScalarSafe().AddInPlace(shortcut), inplace: true).MoveToOuterDisposeScope();
    }
}
