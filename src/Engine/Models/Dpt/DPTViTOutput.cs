using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTOutput</c>: the MLP's second linear layer plus the residual.</summary>
public sealed class DPTViTOutput : nn.Module<Tensor, Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear dense;
#pragma warning restore IDE1006

    public DPTViTOutput(DPTConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(DPTViTOutput))
    {
        dense = nn.Linear(config.IntermediateSize, config.HiddenSize, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, intermediate_size]</param>
    /// <param name="residual">[B, T, D]</param>
    /// <returns>[B, T, D]</returns>
    public override Tensor forward(Tensor hiddenStates, Tensor residual)
    {
        using var scope = NewDisposeScope();
        return dense.forward(hiddenStates).ScalarSafe().AddInPlace(residual).MoveToOuterDisposeScope();
    }
}
