using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>ResnetBlock2D</c> with <c>time_embedding_norm="default"</c>: GroupNorm → act → conv, plus the
/// projected time embedding (when <c>temb_channels</c> is given), GroupNorm → act → conv, and a 1x1 shortcut
/// when the width changes.
/// </summary>
public sealed class ResnetBlock2D : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly Linear? time_emb_proj;
    private readonly GroupNorm norm2;
    private readonly Conv2d conv2;
    private readonly Conv2d? conv_shortcut;
    private readonly Func<Tensor, Tensor> _activation;
    private readonly Func<Tensor, Tensor> _activationInPlace;
    private readonly double _outputScaleFactor;

    /// <param name="temb_channels">Width of the time embedding; null for the VAE blocks, which have none.</param>
    public ResnetBlock2D(long in_channels, long out_channels, long? temb_channels, long groups, double eps,
        string act_fn = "silu", double output_scale_factor = 1.0, Device? device = null, ScalarType? dtype = null)
        : base(nameof(ResnetBlock2D))
    {
        norm1 = nn.GroupNorm(groups, in_channels, eps, affine: true, device: device, dtype: dtype);
        conv1 = nn.Conv2d(in_channels, out_channels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        if (temb_channels is { } tembChannels)
            time_emb_proj = nn.Linear(tembChannels, out_channels, device: device, dtype: dtype);
        norm2 = nn.GroupNorm(groups, out_channels, eps, affine: true, device: device, dtype: dtype);
        conv2 = nn.Conv2d(out_channels, out_channels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        if (in_channels != out_channels)
            conv_shortcut = nn.Conv2d(
                in_channels, out_channels, 1, stride: 1, padding: 0L, device: device, dtype: dtype);
        _activation = Activations.Get(act_fn);
        _activationInPlace = Activations.Get(act_fn, inPlace: true);
        _outputScaleFactor = output_scale_factor;
        RegisterComponents();
    }

    /// <param name="input">[B, C_in, H, W]</param>
    /// <param name="temb">[B, temb_channels] (the UNet's time embedding, before activation) or null.</param>
    /// <returns>[B, C_out, H, W]</returns>
    public override Tensor forward(Tensor input, Tensor? temb)
    {
        using var scope = NewDisposeScope();
        // In-place ops only touch tensors created here; temb and input are shared with the caller. Each intermediate
        // is freed as soon as it is used, so at most three full-size tensors live at once (the VAE decoder's 512²
        // level holds 128 MiB per tensor).
        var normed = norm1.forward(input); // [B, C_in, H, W]
        var hidden = conv1.forward(_activationInPlace(normed)); // [B, C_out, H, W]
        normed.Dispose();
        if (time_emb_proj is not null)
        {
            if (temb is null)
                throw new ArgumentNullException(
                    nameof(temb), "this ResnetBlock2D has a time_emb_proj and needs a time embedding.");
            var projected = time_emb_proj.forward(_activation(temb)); // [B, C_out]
            // [B, C_out, 1, 1] broadcast over H, W
            hidden.ScalarSafe().AddInPlace(projected.unsqueeze(-1).unsqueeze(-1));
        }
        normed = norm2.forward(hidden);
        hidden.Dispose();
        hidden = conv2.forward(_activationInPlace(normed));
        normed.Dispose();
        if (conv_shortcut is null)
        {
            hidden.ScalarSafe().AddInPlace(input);
        }
        else
        {
            using var shortcut = conv_shortcut.forward(input); // [B, C_out, H, W]
            hidden.ScalarSafe().AddInPlace(shortcut);
        }
        if (_outputScaleFactor != 1.0) hidden.ScalarSafe().DivideInPlace(_outputScaleFactor);
        return hidden.MoveToOuterDisposeScope();
    }
}
