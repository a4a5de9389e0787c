using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>Transformer2DModel</c> for continuous (latent image) input: GroupNorm (eps 1e-6), projection in
/// (Linear with <c>use_linear_projection</c>, else 1x1 conv), a stack of <see cref="BasicTransformerBlock"/> over the
/// H·W tokens, projection out, plus the input.
/// </summary>
public sealed class Transformer2DModel : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly nn.Module<Tensor, Tensor> proj_in;
    private readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    private readonly nn.Module<Tensor, Tensor> proj_out;
    private readonly bool _useLinearProjection;

    public Transformer2DModel(long num_attention_heads, long attention_head_dim, long in_channels, long num_layers,
        long cross_attention_dim, long norm_num_groups, bool use_linear_projection, bool only_cross_attention,
        bool upcast_attention, Device? device = null, ScalarType? dtype = null)
        : base(nameof(Transformer2DModel))
    {
        var innerDim = num_attention_heads * attention_head_dim;
        norm = nn.GroupNorm(norm_num_groups, in_channels, 1e-6, affine: true, device: device, dtype: dtype);
        proj_in = use_linear_projection
            ? nn.Linear(in_channels, innerDim, hasBias: true, device: device, dtype: dtype)
            : nn.Conv2d(in_channels, innerDim, 1, stride: 1, padding: 0L, device: device, dtype: dtype);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, (int)num_layers)
            .Select(_ => new BasicTransformerBlock(
                innerDim, num_attention_heads, attention_head_dim, cross_attention_dim,
                only_cross_attention, upcast_attention, device, dtype))
            .ToArray());
        proj_out = use_linear_projection
            ? nn.Linear(innerDim, in_channels, hasBias: true, device: device, dtype: dtype)
            : nn.Conv2d(innerDim, in_channels, 1, stride: 1, padding: 0L, device: device, dtype: dtype);
        _useLinearProjection = use_linear_projection;
        RegisterComponents();
    }

    /// <param name="input">[B, C, H, W]</param>
    /// <param name="context">[B, M, cross_attention_dim]</param>
    /// <returns>[B, C, H, W]</returns>
    public override Tensor forward(Tensor input, Tensor context)
    {
        using var scope = NewDisposeScope();
        long batch = input.shape[0], height = input.shape[2], width = input.shape[3];
        var hidden = norm.forward(input);
        Tensor tokens;
        if (_useLinearProjection)
        {
            tokens = hidden.permute(0, 2, 3, 1).reshape(batch, height * width, -1); // [B, H*W, C]
            tokens = proj_in.forward(tokens); // [B, H*W, inner]
        }
        else
        {
            hidden = proj_in.forward(hidden); // [B, inner, H, W]
            tokens = hidden.permute(0, 2, 3, 1).reshape(batch, height * width, -1); // [B, H*W, inner]
        }

        foreach (var block in transformer_blocks)
            tokens = block.forward(tokens, context);

        Tensor output;
        if (_useLinearProjection)
        {
            tokens = proj_out.forward(tokens); // [B, H*W, C]
            output = tokens.reshape(batch, height, width, -1).permute(0, 3, 1, 2); // [B, C, H, W]
        }
        else
        {
            var image = tokens.reshape(batch, height, width, -1).permute(0, 3, 1, 2).contiguous(); // [B, inner, H, W]
            output = proj_out.forward(image); // [B, C, H, W]
        }
        // input first: the sum then takes the input's (contiguous NCHW) layout.
        return (input.ScalarSafe() + output).Tensor.MoveToOuterDisposeScope();
    }
}
