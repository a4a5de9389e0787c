using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTFeatureFusionLayer</c>: adds the residual unit of the finer neck map (resized bilinearly if the
/// sizes differ), runs a second residual unit, upsamples ×2 (bilinear, <c>align_corners=True</c>) and projects 1×1.
/// </summary>
public sealed class DPTFeatureFusionLayer : nn.Module<Tensor, Tensor?, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Conv2d projection;
    private readonly DPTPreActResidualLayer residual_layer1;
    private readonly DPTPreActResidualLayer residual_layer2;
#pragma warning restore IDE1006

    public DPTFeatureFusionLayer(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTFeatureFusionLayer))
    {
        projection = nn.Conv2d(config.FusionHiddenSize, config.FusionHiddenSize, 1, device: device, dtype: dtype);
        residual_layer1 = new DPTPreActResidualLayer(config, device, dtype);
        residual_layer2 = new DPTPreActResidualLayer(config, device, dtype);
        RegisterComponents();
    }

    /// <param name="hiddenState">[B, F, h, w], the coarser fused map (or the coarsest neck map for the
    /// first layer)</param>
    /// <param name="residual">[B, F, h', w'], the neck map at this level; null for the first layer</param>
    /// <returns>[B, F, 2h, 2w]</returns>
    public override Tensor forward(Tensor hiddenState, Tensor? residual)
    {
        using var scope = NewDisposeScope();
        var hidden = hiddenState;
        if (residual is not null)
        {
            if (residual.shape[2] != hidden.shape[2] || residual.shape[3] != hidden.shape[3])
                residual = nn.functional.interpolate(
                    residual, new[] { hidden.shape[2], hidden.shape[3] }, mode: InterpolationMode.Bilinear,
                    align_corners: false);
            hidden = hidden.ScalarSafe() + residual_layer1.forward(residual);
        }
        hidden = residual_layer2.forward(hidden); // [B, F, h, w]
        hidden = nn.functional.interpolate(hidden, new[] { 2 * hidden.shape[2], 2 * hidden.shape[3] },
            mode: InterpolationMode.Bilinear, align_corners: true); // [B, F, 2h, 2w]
        return projection.forward(hidden).MoveToOuterDisposeScope();
    }
}
