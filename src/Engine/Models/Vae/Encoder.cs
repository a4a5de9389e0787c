using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Vae;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' VAE <c>Encoder</c> (double_z): image → 2·latent_channels moments (mean, logvar) at
/// 1/2^(levels-1) size.</summary>
public sealed class Encoder : nn.Module<Tensor, Tensor>
{
    private const double Eps = 1e-6;
    private readonly Conv2d conv_in;
    private readonly ModuleList<DownEncoderBlock2D> down_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;
    private readonly Func<Tensor, Tensor> _activation; // in place: applied to the fresh norm output

    public Encoder(AutoencoderKLConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(Encoder))
    {
        var channels = config.BlockOutChannels;
        conv_in = nn.Conv2d(config.InChannels, channels[0], 3, stride: 1, padding: 1, device: device, dtype: dtype);
        down_blocks = nn.ModuleList(Enumerable.Range(0, channels.Length)
            .Select(i => new DownEncoderBlock2D(
                i == 0 ? channels[0] : channels[i - 1], channels[i], config.LayersPerBlock,
                config.NormNumGroups, Eps, config.ActFn, add_downsample: i < channels.Length - 1, device, dtype))
            .ToArray());
        mid_block = new UNetMidBlock2D(
            channels[^1], config.NormNumGroups, Eps, config.ActFn, config.MidBlockAddAttention,
            device: device, dtype: dtype);
        conv_norm_out = nn.GroupNorm(
            config.NormNumGroups, channels[^1], Eps, affine: true, device: device, dtype: dtype);
        conv_out = nn.Conv2d(
            channels[^1], 2 * config.LatentChannels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        _activation = Activations.Get(config.ActFn, inPlace: true);
        RegisterComponents();
    }

    /// <param name="image">[B, 3, H, W] in [-1, 1]</param>
    /// <returns>[B, 2*latent_channels, H/f, W/f]</returns>
    public override Tensor forward(Tensor image)
    {
        using var scope = NewDisposeScope();
        // Channels-last throughout, as in the Decoder (faster oneDNN convolutions), and each level freed once used.
        using var nhwc = ChannelsLast.Of(image); // [B, 3, H, W], NHWC in memory
        var hidden = conv_in.forward(nhwc); // [B, C0, H, W]
        // [B, C_last, H/f, W/f]
        foreach (var block in down_blocks) hidden = Intermediates.Replace(hidden, block.forward(hidden), nhwc);
        hidden = Intermediates.Replace(hidden, mid_block.forward(hidden), nhwc);
        var normed = conv_norm_out.forward(hidden);
        hidden.Dispose();
        hidden = conv_out.forward(_activation(normed)).contiguous(); // [B, 2*latent, H/f, W/f], NCHW again
        return hidden.MoveToOuterDisposeScope();
    }
}
