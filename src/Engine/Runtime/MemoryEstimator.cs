using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// The activation model behind <see cref="MemoryEstimate"/>: a fixed part plus a part proportional to the tokens the
/// UNet sees (latent pixels × batch) or the pixels the decoder produces, calibrated against the bench's measured peaks
/// (<c>activation_peak_bytes</c> of the <c>unet512/768/1024</c> and <c>vae512/768/1024</c> stages; figures and the
/// machine in bench/RESULTS.md). Attention runs through libtorch's fused SDPA, whose memory grows linearly with the
/// tokens, so no quadratic term is needed; the measured 1024² points confirm it.
/// </summary>
public static class MemoryEstimator
{
    // Least squares on the full-size SD 2.1 UNet (block_out_channels[0] = 320), float32, CFG batch 2, at 512², 768² and
    // 1024² (measured 0.362, 0.777, 1.311 GiB; this fit: +2.1 %, -1.7 %, +0.4 %), AMD EPYC 2 vCPU, 2026-12-07.
    internal const double UnetFixedBytes = 0.054 * GiB;
    internal const double UnetBytesPerToken = 41_400;

    // Least squares on the SD 2.x VAE decoder (block_out_channels[^1] = 512), float32, one image, at 512², 768², 1024²
    // (measured 0.920, 1.966, 3.508 GiB; this fit: -1.4 %, +1.1 %, -0.3 %), same run.
    internal const double DecoderFixedBytes = 0.044 * GiB;
    internal const double DecoderBytesPerPixel = 3_540;

    private const double GiB = 1024.0 * 1024 * 1024;

    /// <summary>One UNet call on <paramref name="batch"/> latents of <paramref name="tokens"/> pixels each.</summary>
    public static long UNetActivations(UNet2DConditionConfig config, int batch, long tokens, torch.ScalarType dtype)
    {
        // activations (and their workspaces) scale with the channel widths
        double width = config.BlockOutChannels[0] / 320.0;
        return (long)(width * (UnetFixedBytes + UnetBytesPerToken * batch * tokens * ElementScale(dtype)));
    }

    /// <summary>One decode of <paramref name="images"/> outputs of <paramref name="pixels"/> each.</summary>
    public static long DecoderActivations(AutoencoderKLConfig config, int images, long pixels, torch.ScalarType dtype)
    {
        double width = config.BlockOutChannels[^1] / 512.0;
        return (long)(width * (DecoderFixedBytes + DecoderBytesPerPixel * images * pixels * ElementScale(dtype)));
    }

    /// <summary>The estimate for <paramref name="count"/> images of
    /// <paramref name="latentHeight"/>×<paramref name="latentWidth"/> latents on <paramref name="model"/>, with the
    /// given tilings (null: whole).</summary>
    public static MemoryEstimate For(
        StableDiffusionModel model, int count, bool guided, int latentHeight, int latentWidth,
        TilePlan? unetTiles, TilePlan? decoderTiles, long mappedWeightBytes) =>
        For(MemoryCall.Of(model, count, guided, latentHeight, latentWidth, unetTiles, decoderTiles, mappedWeightBytes));

    /// <summary>The estimate for <paramref name="call"/>.</summary>
    internal static MemoryEstimate For(MemoryCall call)
    {
        long Tile(TilePlan? plan, int edge) => plan is null ? edge : Math.Min(plan.TileSize, edge);
        long unetTokens = Tile(call.UnetTiles, call.LatentHeight) * Tile(call.UnetTiles, call.LatentWidth);
        long scale = call.VaeScaleFactor;
        long decodePixels = Tile(call.DecoderTiles, call.LatentHeight) * Tile(call.DecoderTiles, call.LatentWidth)
            * scale * scale;
        long decoder = DecoderActivations(call.Vae, call.Count, decodePixels, call.VaeDType);
        // A tiled decode holds the blended float32 output and its weight map beside the tile's activations.
        if (call.DecoderTiles is not null)
            decoder += (long)call.Count * 4 * 4 * call.LatentHeight * call.LatentWidth * scale * scale;
        return new MemoryEstimate
        {
            UnetBytes = UNetActivations(
                call.Unet, call.Guided ? 2 * call.Count : call.Count, unetTokens, call.UnetDType),
            DecoderBytes = decoder,
            MappedWeightBytes = call.MappedWeightBytes,
        };
    }

    /// <summary>Bytes per element relative to float32: the calibration's dtype.</summary>
    private static double ElementScale(torch.ScalarType dtype) => dtype is torch.ScalarType.Float32 ? 1.0 : 0.5;
}
