using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Vae;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>UNetMidBlock2D</c> as the VAE uses it (no time embedding): resnet, then (single-head spatial
/// self-attention with group norm and residual → resnet).
/// </summary>
public sealed class UNetMidBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    public UNetMidBlock2D(
        long in_channels, long resnet_groups, double resnet_eps, string resnet_act_fn, bool add_attention,
        int num_layers = 1, Device? device = null, ScalarType? dtype = null)
        : base(nameof(UNetMidBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers + 1)
            .Select(_ => new ResnetBlock2D(
                in_channels, in_channels, null, resnet_groups, resnet_eps, resnet_act_fn, device: device, dtype: dtype))
            .ToArray());
        // attention_head_dim = in_channels, so one head over all channels. diffusers builds this Attention with
        // upcast_softmax; SDPA ignores that in float32, and we honour it for half precision by upcasting.
        attentions = nn.ModuleList(Enumerable.Range(0, add_attention ? num_layers : 0)
            .Select(_ => new Attention(in_channels, null, heads: 1, dim_head: in_channels, bias: true, upcast: true,
                norm_num_groups: resnet_groups, eps: resnet_eps, residual_connection: true, device: device,
                dtype: dtype))
            .ToArray());
        RegisterComponents();
    }

    /// <param name="hidden">[B, C, H, W]</param>
    /// <returns>[B, C, H, W]</returns>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var input = hidden;
        hidden = resnets[0].forward(hidden, null); // [B, C, H, W]
        for (var i = 1; i < resnets.Count; i++)
        {
            if (attentions.Count > 0)
                hidden = Intermediates.Replace(hidden, attentions[i - 1].forward(hidden, null), input);
            hidden = Intermediates.Replace(hidden, resnets[i].forward(hidden, null), input);
        }
        return hidden.MoveToOuterDisposeScope();
    }
}
