using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>CrossAttnDownBlock2D</c>: (resnet → transformer) pairs, then an optional stride-2
/// downsampler.</summary>
public sealed class CrossAttnDownBlock2D : UNetDownBlock
{
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    public CrossAttnDownBlock2D(long in_channels, long out_channels, long temb_channels, int num_layers,
        int transformer_layers_per_block, long resnet_groups, double resnet_eps, string resnet_act_fn,
        bool add_downsample,
        long downsample_padding, long num_attention_heads, long cross_attention_dim, bool use_linear_projection,
        bool only_cross_attention, bool upcast_attention, Device? device = null, ScalarType? dtype = null)
        : base(nameof(CrossAttnDownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(i => new ResnetBlock2D(
                i == 0 ? in_channels : out_channels, out_channels, temb_channels, resnet_groups,
                resnet_eps, resnet_act_fn, device: device, dtype: dtype))
            .ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(_ => new Transformer2DModel(num_attention_heads, out_channels / num_attention_heads, out_channels,
                transformer_layers_per_block, cross_attention_dim, resnet_groups, use_linear_projection,
                only_cross_attention,
                upcast_attention, device, dtype))
            .ToArray());
        if (add_downsample)
            downsamplers = nn.ModuleList(new Downsample2D(
                out_channels, out_channels, downsample_padding, device, dtype));
        RegisterComponents();
    }

    public override Tensor[] Forward(Tensor hidden, Tensor temb, Tensor context)
    {
        using var scope = NewDisposeScope();
        var outputs = new List<Tensor>();
        for (var i = 0; i < resnets.Count; i++)
        {
            hidden = resnets[i].forward(hidden, temb); // [B, C_out, H, W]
            hidden = attentions[i].forward(hidden, context);
            outputs.Add(hidden);
        }
        if (downsamplers is not null)
        {
            hidden = downsamplers[0].forward(hidden); // [B, C_out, H/2, W/2]
            outputs.Add(hidden);
        }
        foreach (var output in outputs) output.MoveToOuterDisposeScope();
        return outputs.ToArray();
    }
}
