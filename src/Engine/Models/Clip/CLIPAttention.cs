using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>
/// Multi-head causal self-attention of the CLIP text tower (transformers' <c>CLIPAttention</c>, used with the
/// causal mask and no padding mask, as Stable Diffusion does).
/// </summary>
public sealed class CLIPAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear q_proj;
    private readonly Linear out_proj;
#pragma warning restore IDE1006
    private readonly long _numHeads;
    private readonly long _headDim;

    public CLIPAttention(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPAttention))
    {
        _numHeads = config.NumAttentionHeads;
        _headDim = config.HiddenSize / config.NumAttentionHeads;
        k_proj = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: true, device: device, dtype: dtype);
        v_proj = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: true, device: device, dtype: dtype);
        q_proj = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: true, device: device, dtype: dtype);
        out_proj = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: true, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        var batch = hiddenStates.shape[0];
        var seqLength = hiddenStates.shape[1];
        // [B, H, T, Dh]
        var query = q_proj.forward(hiddenStates).view(batch, seqLength, _numHeads, _headDim).transpose(1, 2);
        // [B, H, T, Dh]
        var key = k_proj.forward(hiddenStates).view(batch, seqLength, _numHeads, _headDim).transpose(1, 2);
        // [B, H, T, Dh]
        var value = v_proj.forward(hiddenStates).view(batch, seqLength, _numHeads, _headDim).transpose(1, 2);
        // softmax(q kᵀ / sqrt(Dh) + causal mask) v: SDPA's default scale is 1/sqrt(Dh), as CLIP's.
        var attention = nn.functional.scaled_dot_product_attention(query, key, value, is_casual: true); // [B, H, T, Dh]
        attention = attention.transpose(1, 2).reshape(batch, seqLength, _numHeads * _headDim); // [B, T, D]
        return out_proj.forward(attention).MoveToOuterDisposeScope();
    }
}
