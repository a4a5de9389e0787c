using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTPreActResidualLayer</c> (MiDaS' ResidualConvUnit): x +
/// conv(ReLU(conv(ReLU(x)))).</summary>
public sealed class DPTPreActResidualLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Conv2d convolution1;
    private readonly Conv2d convolution2;
#pragma warning restore IDE1006

    public DPTPreActResidualLayer(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTPreActResidualLayer))
    {
        long width = config.FusionHiddenSize;
        convolution1 = nn.Conv2d(
            width, width, 3, stride: 1, padding: 1L, bias: config.FusionResidualBias, device: device, dtype: dtype);
        convolution2 = nn.Conv2d(
            width, width, 3, stride: 1, padding: 1L, bias: config.FusionResidualBias, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenState">[B, F, h, w]</param>
    /// <returns>[B, F, h, w]</returns>
    public override Tensor forward(Tensor hiddenState)
    {
        using var scope = NewDisposeScope();
        var hidden = convolution1.forward(nn.functional.relu(hiddenState)); // not in place: the input is the residual
        hidden = convolution2.forward(nn.functional.relu(hidden, inplace: true));
        return hidden.ScalarSafe().AddInPlace(hiddenState).MoveToOuterDisposeScope();
    }
}
