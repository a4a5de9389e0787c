using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitModel</c> as DPT-Hybrid uses it (bottleneck layers: no final norm, pooler unused):
/// the stem (<c>embedder</c>) and the stages (<c>encoder</c>).</summary>
public sealed class BitModel : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly BitEmbeddings embedder;
    private readonly BitEncoder encoder;
#pragma warning restore IDE1006

    public BitModel(BitConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BitModel))
    {
        embedder = new BitEmbeddings(config, device, dtype);
        encoder = new BitEncoder(config, device, dtype);
        RegisterComponents();
    }

    /// <summary>The stem output and every stage's output (<c>feature_maps</c> for out_features stage1..3).</summary>
    /// <param name="pixelValues">[B, 3, H, W]</param>
    public (Tensor Stem, IReadOnlyList<Tensor> Stages) ForwardFeatures(Tensor pixelValues)
    {
        var stem = embedder.forward(pixelValues); // [B, E, H/4, W/4]
        return (stem, encoder.ForwardStages(stem));
    }

    /// <returns>The last stage's output.</returns>
    public override Tensor forward(Tensor pixelValues)
    {
        using var stem = embedder.forward(pixelValues);
        return encoder.forward(stem);
    }
}
