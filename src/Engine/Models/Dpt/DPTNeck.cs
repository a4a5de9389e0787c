using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTNeck</c>: reassemble, a 3×3 convolution (no bias) per map to the fusion width,
/// then fusion.</summary>
public sealed class DPTNeck : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly DPTReassembleStage reassemble_stage;
    private readonly ModuleList<Conv2d> convs;
    private readonly DPTFeatureFusionStage fusion_stage;
#pragma warning restore IDE1006

    public DPTNeck(DPTConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(DPTNeck))
    {
        reassemble_stage = new DPTReassembleStage(config, device, dtype);
        convs = new ModuleList<Conv2d>();
        foreach (var channels in config.NeckHiddenSizes)
            convs.Add(nn.Conv2d(
                channels, config.FusionHiddenSize, 3, padding: 1L, bias: false, device: device, dtype: dtype));
        fusion_stage = new DPTFeatureFusionStage(config, device, dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">BiT stages 1, 2 and the two chosen ViT layer outputs.</param>
    public DPTNeckOutput Forward(IReadOnlyList<Tensor> hiddenStates)
    {
        var reassembled = reassemble_stage.Forward(hiddenStates);
        var projected = reassembled.Select((map, i) => convs[i].forward(map)).ToList(); // [B, F, h_i, w_i]
        return new DPTNeckOutput(reassembled, projected, fusion_stage.Forward(projected));
    }
}
