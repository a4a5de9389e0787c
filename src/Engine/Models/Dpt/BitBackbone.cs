using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitBackbone</c>: holds the <c>bit</c> model and returns the feature maps of
/// stages 1..3.</summary>
public sealed class BitBackbone : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly BitModel bit;
#pragma warning restore IDE1006

    public BitBackbone(BitConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BitBackbone))
    {
        bit = new BitModel(config, device, dtype);
        RegisterComponents();
    }

    /// <inheritdoc cref="BitModel.ForwardFeatures"/>
    public (Tensor Stem, IReadOnlyList<Tensor> Stages) ForwardFeatures(Tensor pixelValues) =>
        bit.ForwardFeatures(pixelValues);

    public override Tensor forward(Tensor pixelValues) => bit.forward(pixelValues);
}
