using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Vae;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>DownEncoderBlock2D</c>: resnets without time embedding, then an optional stride-2 downsampler
/// (padding 0).</summary>
public sealed class DownEncoderBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D>? downsamplers;

    public DownEncoderBlock2D(
        long in_channels, long out_channels, int num_layers, long resnet_groups, double resnet_eps,
        string resnet_act_fn, bool add_downsample, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DownEncoderBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, num_layers)
            .Select(i => new ResnetBlock2D(
                i == 0 ? in_channels : out_channels, out_channels, null, resnet_groups, resnet_eps,
                resnet_act_fn, device: device, dtype: dtype))
            .ToArray());
        if (add_downsample)
            downsamplers = nn.ModuleList(new Downsample2D(out_channels, out_channels, padding: 0, device, dtype));
        RegisterComponents();
    }

    /// <param name="hidden">[B, C_in, H, W]</param>
    /// <returns>[B, C_out, H/2, W/2], or [B, C_out, H, W] for the last block</returns>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var input = hidden;
        // [B, C_out, H, W]
        foreach (var resnet in resnets) hidden = Intermediates.Replace(hidden, resnet.forward(hidden, null), input);
        // [B, C_out, H/2, W/2]
        if (downsamplers is not null) hidden = Intermediates.Replace(hidden, downsamplers[0].forward(hidden), input);
        return hidden.MoveToOuterDisposeScope();
    }
}
