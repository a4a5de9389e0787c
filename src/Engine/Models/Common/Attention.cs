using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>Attention</c> run the way <c>AttnProcessor2_0</c> runs it: q/k/v projections, multi-head
/// <c>scaled_dot_product_attention</c> (scale 1/sqrt(head_dim)), output projection <c>to_out.0</c>.
/// Self-attention when no context is passed. The VAE mid-block variant adds an input <c>group_norm</c>,
/// takes [B, C, H, W] and adds the input back (<c>residual_connection</c>).
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly GroupNorm? group_norm;
    private readonly Linear to_q;
    private readonly Linear to_k;
    private readonly Linear to_v;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> to_out;
    private readonly long _heads;
    private readonly bool _upcast;
    private readonly bool _residualConnection;

    /// <param name="query_dim">Width of the hidden states (queries and output).</param>
    /// <param name="cross_attention_dim">Width of the context (keys/values); null means self-attention
    /// (= query_dim).</param>
    /// <param name="upcast">Run the attention itself in float32 (diffusers' <c>upcast_attention</c>): matters
    /// for bf16/fp16.</param>
    /// <param name="norm_num_groups">When given, a GroupNorm over the input (VAE mid-block).</param>
    /// <param name="residual_connection">Add the input to the output (VAE mid-block).</param>
    public Attention(long query_dim, long? cross_attention_dim, long heads, long dim_head, bool bias, bool upcast,
        long? norm_num_groups = null, double eps = 1e-5, bool residual_connection = false,
        Device? device = null, ScalarType? dtype = null)
        : base(nameof(Attention))
    {
        var innerDim = heads * dim_head;
        var contextDim = cross_attention_dim ?? query_dim;
        if (norm_num_groups is { } groups)
            group_norm = nn.GroupNorm(groups, query_dim, eps, affine: true, device: device, dtype: dtype);
        to_q = nn.Linear(query_dim, innerDim, hasBias: bias, device: device, dtype: dtype);
        to_k = nn.Linear(contextDim, innerDim, hasBias: bias, device: device, dtype: dtype);
        to_v = nn.Linear(contextDim, innerDim, hasBias: bias, device: device, dtype: dtype);
        // to_out.1 is a Dropout in diffusers: no weights, identity at inference.
        to_out = nn.ModuleList<nn.Module<Tensor, Tensor>>(
            nn.Linear(innerDim, query_dim, hasBias: true, device: device, dtype: dtype),
            nn.Dropout(0.0));
        _heads = heads;
        _upcast = upcast;
        _residualConnection = residual_connection;
        RegisterComponents();
    }

    /// <param name="hidden">[B, N, query_dim], or [B, C, H, W] for the VAE variant.</param>
    /// <param name="context">[B, M, cross_attention_dim] for cross-attention; null for self-attention.</param>
    /// <returns>Same shape as <paramref name="hidden"/>.</returns>
    public override Tensor forward(Tensor hidden, Tensor? context)
    {
        using var scope = NewDisposeScope();
        var isImage = hidden.dim() == 4;
        long batch = hidden.shape[0], channels = 0, height = 0, width = 0;
        var tokens = hidden;
        if (isImage)
        {
            (channels, height, width) = (hidden.shape[1], hidden.shape[2], hidden.shape[3]);
            // GroupNorm over [B, C, H, W] equals diffusers' GroupNorm over [B, C, H*W].
            var normed = group_norm is null ? hidden : group_norm.forward(hidden);
            // permute+reshape is a free view of a channels-last tensor (the VAE decoder's layout) and one
            // copy of an NCHW one.
            tokens = normed.permute(0, 2, 3, 1).reshape(batch, height * width, channels); // [B, H*W, C]
        }
        else if (group_norm is not null)
        {
            tokens = group_norm.forward(hidden.transpose(1, 2)).transpose(1, 2);
        }

        var source = context ?? tokens;
        var query = SplitHeads(to_q.forward(tokens));  // [B, heads, N, d]
        var key = SplitHeads(to_k.forward(source));    // [B, heads, M, d]
        var value = SplitHeads(to_v.forward(source));  // [B, heads, M, d]

        Tensor attended;
        var computeType = query.dtype;
        if (_upcast && computeType != ScalarType.Float32 && computeType != ScalarType.Float64)
        {
            attended = nn.functional.scaled_dot_product_attention(
                query.to(ScalarType.Float32), key.to(ScalarType.Float32), value.to(ScalarType.Float32)).to(computeType);
        }
        else
        {
            attended = nn.functional.scaled_dot_product_attention(query, key, value); // [B, heads, N, d]
        }

        // [B, N, heads*d]
        var merged = attended.transpose(1, 2).reshape(batch, -1, attended.shape[1] * attended.shape[3]);
        var output = to_out[0].forward(merged); // [B, N, query_dim]
        if (isImage)
            output = output.transpose(1, 2).reshape(batch, channels, height, width); // [B, C, H, W]
        if (_residualConnection)
            output = hidden.ScalarSafe() + output;
        return output.MoveToOuterDisposeScope();
    }

    // [B, N, heads*d] -> [B, heads, N, d]
    private Tensor SplitHeads(Tensor projected) =>
        projected.view(projected.shape[0], projected.shape[1], _heads, -1).transpose(1, 2);
}
