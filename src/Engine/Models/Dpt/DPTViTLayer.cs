using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTLayer</c>, a pre-norm transformer block: x + attn(LN(x)), then h +
/// MLP(LN(h)).</summary>
public sealed class DPTViTLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly DPTViTAttention attention;
    private readonly DPTViTIntermediate intermediate;
    private readonly DPTViTOutput output;
    private readonly LayerNorm layernorm_before;
    private readonly LayerNorm layernorm_after;
#pragma warning restore IDE1006

    public DPTViTLayer(DPTConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(DPTViTLayer))
    {
        attention = new DPTViTAttention(config, device, dtype);
        intermediate = new DPTViTIntermediate(config, device, dtype);
        output = new DPTViTOutput(config, device, dtype);
        layernorm_before = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps, device: device, dtype: dtype);
        layernorm_after = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    /// <returns>[B, T, D]</returns>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        // [B, T, D]
        var attended = attention.forward(layernorm_before.forward(hiddenStates)).ScalarSafe().AddInPlace(hiddenStates);
        var expanded = intermediate.forward(layernorm_after.forward(attended)); // [B, T, intermediate]
        return output.forward(expanded, attended).MoveToOuterDisposeScope();
    }
}
