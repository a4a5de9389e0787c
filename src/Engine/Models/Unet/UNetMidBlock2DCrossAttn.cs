using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>UNetMidBlock2DCrossAttn</c>: resnet, then (transformer → resnet) once
/// (num_layers 1).</summary>
public sealed class UNetMidBlock2DCrossAttn : nn.Module<Tensor, Tensor, Tensor, Tensor>
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    public UNetMidBlock2DCrossAttn(
        long in_channels, long temb_channels, int transformer_layers_per_block, long resnet_groups,
        double resnet_eps, string resnet_act_fn, double output_scale_factor, long num_attention_heads,
        long cross_attention_dim,
        bool use_linear_projection, bool upcast_attention, int num_layers = 1, Device? device = null,
        ScalarType? dtype = null)
        : base(nameof(UNetMidBlock2DCrossAttn))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers + 1)
            .Select(_ => new ResnetBlock2D(
                in_channels, in_channels, temb_channels, resnet_groups, resnet_eps, resnet_act_fn,
                output_scale_factor, device, dtype))
            .ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(_ => new Transformer2DModel(num_attention_heads, in_channels / num_attention_heads, in_channels,
                transformer_layers_per_block, cross_attention_dim, resnet_groups, use_linear_projection,
                only_cross_attention: false, upcast_attention, device, dtype))
            .ToArray());
        RegisterComponents();
    }

    /// <param name="hidden">[B, C, H, W]</param>
    /// <param name="temb">[B, temb_channels]</param>
    /// <param name="context">[B, M, cross_attention_dim]</param>
    /// <returns>[B, C, H, W]</returns>
    public override Tensor forward(Tensor hidden, Tensor temb, Tensor context)
    {
        using var scope = NewDisposeScope();
        hidden = resnets[0].forward(hidden, temb);
        for (var i = 0; i < attentions.Count; i++)
        {
            hidden = attentions[i].forward(hidden, context);
            hidden = resnets[i + 1].forward(hidden, temb);
        }
        return hidden.MoveToOuterDisposeScope();
    }
}
