using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>DownBlock2D</c>: resnets, then an optional stride-2 downsampler.</summary>
public sealed class DownBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    public DownBlock2D(long in_channels, long out_channels, long temb_channels, int num_layers, long resnet_groups,
        double resnet_eps, string resnet_act_fn, bool add_downsample, long downsample_padding,
        Device? device = null, ScalarType? dtype = null)
        : base(nameof(DownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(i => new ResnetBlock2D(
                i == 0 ? in_channels : out_channels, out_channels, temb_channels, resnet_groups,
                resnet_eps, resnet_act_fn, device: device, dtype: dtype))
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
        foreach (var resnet in resnets)
        {
            hidden = resnet.forward(hidden, temb); // [B, C_out, H, W]
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
