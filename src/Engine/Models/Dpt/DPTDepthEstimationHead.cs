using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTDepthEstimationHead</c>: conv 3×3 (F → F/2), bilinear ×2 (<c>align_corners=True</c>),
/// conv 3×3 (F/2 → 32), ReLU, conv 1×1 (32 → 1), ReLU. The Sequential's indices are the state-dict keys
/// (<c>head.0</c>, <c>head.2</c>, <c>head.4</c>).
/// </summary>
public sealed class DPTDepthEstimationHead : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Sequential head;
#pragma warning restore IDE1006

    public DPTDepthEstimationHead(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTDepthEstimationHead))
    {
        long features = config.FusionHiddenSize;
        head = nn.Sequential(
            ("0", nn.Conv2d(features, features / 2, 3, stride: 1, padding: 1L, device: device, dtype: dtype)),
            ("1", nn.Upsample(scale_factor: new[] { 2.0, 2.0 }, mode: UpsampleMode.Bilinear, align_corners: true)),
            ("2", nn.Conv2d(features / 2, 32, 3, stride: 1, padding: 1L, device: device, dtype: dtype)),
            ("3", nn.ReLU()),
            ("4", nn.Conv2d(32, 1, 1, stride: 1, padding: 0L, device: device, dtype: dtype)),
            ("5", nn.ReLU()));
        RegisterComponents();
    }

    /// <param name="hiddenState">[B, F, h, w], the last fusion output</param>
    /// <returns>[B, 2h, 2w], non-negative relative inverse depth</returns>
    public override Tensor forward(Tensor hiddenState)
    {
        using var scope = NewDisposeScope();
        return head.forward(hiddenState).squeeze(1).MoveToOuterDisposeScope();
    }
}
