using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTIntermediate</c>: the MLP's first linear layer and exact (erf) GELU.</summary>
public sealed class DPTViTIntermediate : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear dense;
#pragma warning restore IDE1006

    public DPTViTIntermediate(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    /// <returns>[B, T, intermediate_size]</returns>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        return nn.functional.gelu(dense.forward(hiddenStates)).MoveToOuterDisposeScope();
    }
}
