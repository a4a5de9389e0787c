using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitStage</c>: <c>depth</c> bottleneck blocks; the first one strides and projects
/// the shortcut.</summary>
public sealed class BitStage : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<BitBottleneckLayer> layers;
#pragma warning restore IDE1006

    public BitStage(
        BitConfig config, long inChannels, long outChannels, long stride, int depth, Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(BitStage))
    {
        layers = new ModuleList<BitBottleneckLayer>();
        for (int i = 0; i < depth; i++)
            layers.Add(new BitBottleneckLayer(
                config, i == 0 ? inChannels : outChannels, outChannels, i == 0 ? stride : 1, i == 0, device, dtype));
        RegisterComponents();
    }

    /// <param name="input">[B, in, H, W]</param>
    /// <returns>[B, out, ceil(H / stride), ceil(W / stride)]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var hidden = input;
        foreach (var layer in layers) hidden = layer.forward(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}
