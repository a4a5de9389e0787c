using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>BasicTransformerBlock</c> (norm_type "layer_norm", GEGLU feed-forward): pre-norm self-attention,
/// cross-attention on the text context and feed-forward, each added back to the stream. With
/// <c>only_cross_attention</c> the first attention also attends to the context instead of itself.
/// </summary>
public sealed class BasicTransformerBlock : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly Attention attn1;
    private readonly LayerNorm norm2;
    private readonly Attention attn2;
    private readonly LayerNorm norm3;
    private readonly FeedForward ff;
    private readonly bool _onlyCrossAttention;

    public BasicTransformerBlock(long dim, long num_attention_heads, long attention_head_dim, long cross_attention_dim,
        bool only_cross_attention, bool upcast_attention, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BasicTransformerBlock))
    {
        norm1 = nn.LayerNorm(dim, 1e-5, elementwise_affine: true, device: device, dtype: dtype);
        attn1 = new Attention(
            dim, only_cross_attention ? cross_attention_dim : null, num_attention_heads, attention_head_dim,
            bias: false, upcast: upcast_attention, device: device, dtype: dtype);
        norm2 = nn.LayerNorm(dim, 1e-5, elementwise_affine: true, device: device, dtype: dtype);
        attn2 = new Attention(dim, cross_attention_dim, num_attention_heads, attention_head_dim,
            bias: false, upcast: upcast_attention, device: device, dtype: dtype);
        norm3 = nn.LayerNorm(dim, 1e-5, elementwise_affine: true, device: device, dtype: dtype);
        ff = new FeedForward(dim, device: device, dtype: dtype);
        _onlyCrossAttention = only_cross_attention;
        RegisterComponents();
    }

    /// <param name="hidden">[B, N, dim]</param>
    /// <param name="context">[B, M, cross_attention_dim] (text encoder states)</param>
    /// <returns>[B, N, dim]</returns>
    public override Tensor forward(Tensor hidden, Tensor context)
    {
        using var scope = NewDisposeScope();
        // Each sub-layer output is a fresh tensor: add the stream into it in place.
        hidden = attn1.forward(norm1.forward(hidden), _onlyCrossAttention ? context : null)
            .ScalarSafe()
            .AddInPlace(hidden);
        hidden = attn2.forward(norm2.forward(hidden), context).ScalarSafe().AddInPlace(hidden);
        hidden = ff.forward(norm3.forward(hidden)).ScalarSafe().AddInPlace(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}
