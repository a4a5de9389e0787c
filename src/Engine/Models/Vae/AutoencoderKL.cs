using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Vae;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>AutoencoderKL</c>: <see cref="Encode"/> image → posterior, <see cref="Decode"/>
/// latents → image.</summary>
public sealed class AutoencoderKL : nn.Module
{
    private readonly Encoder encoder;
    private readonly Decoder decoder;
    private readonly Conv2d? quant_conv;
    private readonly Conv2d? post_quant_conv;

    /// <summary>Builds the architecture of <paramref name="config"/> with freshly initialised
    /// (random) weights.</summary>
    /// <param name="dtype">Parameter dtype (default float32).</param>
    /// <param name="device">Where the parameters live; <c>torch.META</c> builds the structure
    /// without allocating.</param>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public AutoencoderKL(AutoencoderKLConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(AutoencoderKL))
    {
        config.Validate();
        Config = config;
        var latent = config.LatentChannels;
        encoder = new Encoder(config, device, dtype);
        decoder = new Decoder(config, device, dtype);
        if (config.UseQuantConv)
            quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1, stride: 1, padding: 0L, device: device, dtype: dtype);
        if (config.UsePostQuantConv)
            post_quant_conv = nn.Conv2d(latent, latent, 1, stride: 1, padding: 0L, device: device, dtype: dtype);
        RegisterComponents();
        TensorAccounting.RecordBuilt(this); // one emptied wrapper per parameter made (see there)
        NormInitialization.Reset(this);
    }

    /// <summary>The configuration this model was built from.</summary>
    public AutoencoderKLConfig Config { get; }

    /// <summary>The latent scaling factor from the config (0.18215 for SD 2.x, 0.08333 for the x4 upscaler).</summary>
    public double ScalingFactor => Config.ScalingFactor;

    /// <summary>Loads <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> from a diffusers <c>vae/</c>
    /// folder (strict: every key must match).</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="Loading.ModelLoadException">The weights do not match the config's architecture (names the key
    /// and file).</exception>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public static AutoencoderKL FromPretrained(string folder, ScalarType dtype, Device device)
    {
        var config = AutoencoderKLConfig.FromFile(Path.Combine(folder, "config.json"));
        return PretrainedWeights.Load("VAE", on => new AutoencoderKL(config, dtype, on),
            new[] { Path.Combine(folder, "diffusion_pytorch_model.safetensors") }, dtype, device);
    }

    /// <param name="image">[B, 3, H, W] in [-1, 1]</param>
    /// <returns>The posterior: mean and std, each [B, latent_channels, H/f, W/f] (not yet scaled by
    /// <see cref="ScalingFactor"/>).</returns>
    public VaePosterior Encode(Tensor image)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var moments = encoder.forward(image); // [B, 2*latent, h, w]
        if (quant_conv is not null) moments = quant_conv.forward(moments);
        var halves = moments.chunk(2, dim: 1); // 2 x [B, latent, h, w]
        var std = (0.5 * halves[1].ScalarSafe().Clamp(-30.0, 20.0)).Tensor.exp();
        return new VaePosterior(halves[0].MoveToOuterDisposeScope(), std.MoveToOuterDisposeScope());
    }

    /// <param name="latents">[B, latent_channels, h, w], already divided by <see cref="ScalingFactor"/></param>
    /// <returns>[B, 3, h*f, w*f], roughly in [-1, 1] (not clamped)</returns>
    public Tensor Decode(Tensor latents)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var z = post_quant_conv is null ? latents : post_quant_conv.forward(latents);
        return decoder.forward(z).MoveToOuterDisposeScope();
    }
}
