using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>CrossAttnUpBlock2D</c>: (resnet over [hidden, skip] → transformer) pairs, then an optional x2
/// upsampler.</summary>
public sealed class CrossAttnUpBlock2D : UNetUpBlock
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D>? upsamplers;

    /// <param name="in_channels">Width of the deepest skip this block consumes (the down block before
    /// its partner).</param>
    /// <param name="prev_output_channel">Width of the incoming hidden state.</param>
    public CrossAttnUpBlock2D(
        long in_channels, long prev_output_channel, long out_channels, long temb_channels, int num_layers,
        int transformer_layers_per_block, long resnet_groups, double resnet_eps, string resnet_act_fn,
        bool add_upsample,
        long num_attention_heads, long cross_attention_dim, bool use_linear_projection, bool only_cross_attention,
        bool upcast_attention, Device? device = null, ScalarType? dtype = null)
        : base(nameof(CrossAttnUpBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(i => new ResnetBlock2D(
                (i == 0 ? prev_output_channel : out_channels) + (i == num_layers - 1 ? in_channels : out_channels),
                out_channels, temb_channels, resnet_groups, resnet_eps, resnet_act_fn, device: device, dtype: dtype))
            .ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(_ => new Transformer2DModel(num_attention_heads, out_channels / num_attention_heads, out_channels,
                transformer_layers_per_block, cross_attention_dim, resnet_groups, use_linear_projection,
                only_cross_attention,
                upcast_attention, device, dtype))
            .ToArray());
        if (add_upsample)
            upsamplers = nn.ModuleList(new Upsample2D(out_channels, out_channels, device, dtype));
        RegisterComponents();
    }

    public override int SkipCount => resnets.Count;

    public override Tensor Forward(
        Tensor hidden, IReadOnlyList<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize)
    {
        using var scope = NewDisposeScope();
        for (var i = 0; i < resnets.Count; i++)
        {
            var skip = skips[skips.Count - 1 - i];
            hidden = torch.cat(new[] { hidden, skip }, dim: 1); // [B, C + C_skip, H, W]
            hidden = resnets[i].forward(hidden, temb); // [B, C_out, H, W]
            hidden = attentions[i].forward(hidden, context);
        }
        if (upsamplers is not null)
            hidden = upsamplers[0].Forward(hidden, upsampleSize); // [B, C_out, 2H, 2W]
        return hidden.MoveToOuterDisposeScope();
    }
}
