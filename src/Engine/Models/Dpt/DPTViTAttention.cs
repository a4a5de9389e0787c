using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTAttention</c>: self-attention (<c>attention</c>) then its projection
/// (<c>output</c>).</summary>
public sealed class DPTViTAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly DPTViTSelfAttention attention;
    private readonly DPTViTSelfOutput output;
#pragma warning restore IDE1006

    public DPTViTAttention(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTAttention))
    {
        attention = new DPTViTSelfAttention(config, device, dtype);
        output = new DPTViTSelfOutput(config, device, dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var context = attention.forward(hiddenStates);
        return output.forward(context);
    }
}
