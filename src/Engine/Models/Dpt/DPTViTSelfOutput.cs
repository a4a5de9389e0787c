using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTSelfOutput</c>: the attention's output projection (the residual is added by
/// the layer).</summary>
public sealed class DPTViTSelfOutput : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear dense;
#pragma warning restore IDE1006

    public DPTViTSelfOutput(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTSelfOutput))
    {
        dense = nn.Linear(config.HiddenSize, config.HiddenSize, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    public override Tensor forward(Tensor hiddenStates) => dense.forward(hiddenStates);
}
