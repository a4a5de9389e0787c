using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTFeatureFusionStage</c>: fuses the neck maps from the coarsest to the finest.</summary>
public sealed class DPTFeatureFusionStage : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<DPTFeatureFusionLayer> layers;
#pragma warning restore IDE1006

    public DPTFeatureFusionStage(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTFeatureFusionStage))
    {
        layers = new ModuleList<DPTFeatureFusionLayer>();
        for (int i = 0; i < config.NeckHiddenSizes.Length; i++)
            layers.Add(new DPTFeatureFusionLayer(config, device, dtype));
        RegisterComponents();
    }

    /// <param name="hiddenStates">The neck maps, finest first: [B, F, h_i, w_i]</param>
    /// <returns>The fused maps, coarsest first (layer 0 upsamples the coarsest map; the last is the finest,
    /// at 2·h_0).</returns>
    public IReadOnlyList<Tensor> Forward(IReadOnlyList<Tensor> hiddenStates)
    {
        var reversed = hiddenStates.Reverse().ToList();
        var fused = new List<Tensor> { layers[0].forward(reversed[0], null) };
        for (int i = 1; i < reversed.Count; i++) fused.Add(layers[i].forward(fused[^1], reversed[i]));
        return fused;
    }
}
