using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTSelfAttention</c>: multi-head softmax(q kᵀ / √d) v over all tokens
/// (no mask).</summary>
public sealed class DPTViTSelfAttention : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
#pragma warning restore IDE1006
    private readonly long _heads;
    private readonly long _headSize;

    public DPTViTSelfAttention(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTSelfAttention))
    {
        _heads = config.NumAttentionHeads;
        _headSize = config.HiddenSize / config.NumAttentionHeads;
        query = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias, device: device, dtype: dtype);
        key = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias, device: device, dtype: dtype);
        value = nn.Linear(config.HiddenSize, config.HiddenSize, hasBias: config.QkvBias, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    /// <returns>[B, T, D], the heads' contexts concatenated</returns>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        long batch = hiddenStates.shape[0], tokens = hiddenStates.shape[1];
        Tensor Heads(Linear projection) =>
            projection.forward(hiddenStates).view(batch, tokens, _heads, _headSize).transpose(1, 2); // [B, H, T, Dh]
        // SDPA's default scale is 1/√Dh, the same as transformers' explicit division.
        // [B, H, T, Dh]
        var context = nn.functional.scaled_dot_product_attention(Heads(query), Heads(key), Heads(value));
        // [B, T, D]
        return context.transpose(1, 2).reshape(batch, tokens, _heads * _headSize).MoveToOuterDisposeScope();
    }
}
