using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// What one generation call holds at its peak beyond what is already in use, estimated before it runs: the larger of
/// the UNet's and the VAE decoder's activations (they never overlap: the UNet's are freed before the decode), plus the
/// weights that are file mappings and so must stay in the page cache for the call to run at speed.
/// </summary>
public sealed record MemoryEstimate
{
    /// <summary>One UNet call's activations (the CFG batch, or one tile of it).</summary>
    public required long UnetBytes { get; init; }

    /// <summary>The VAE decode's activations (the whole batch, or one tile plus the blended output).</summary>
    public required long DecoderBytes { get; init; }

    /// <summary>Weights that view a mapped file (CPU, file dtype = model dtype): the page cache must keep them.</summary>
    public required long MappedWeightBytes { get; init; }

    /// <summary>The peak the call adds: the larger activation stage, plus the mapped weights.</summary>
    public long PeakBytes => Math.Max(UnetBytes, DecoderBytes) + MappedWeightBytes;

    /// <summary>Which stage sets the peak ("UNet" or "decoder").</summary>
    public string PeakStage => DecoderBytes > UnetBytes ? "decoder" : "UNet";
}

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
        double width = config.BlockOutChannels[0] / 320.0;  // activations (and their workspaces) scale with the channel widths
        return (long)(width * (UnetFixedBytes + UnetBytesPerToken * batch * tokens * ElementScale(dtype)));
    }

    /// <summary>One decode of <paramref name="images"/> outputs of <paramref name="pixels"/> each.</summary>
    public static long DecoderActivations(AutoencoderKLConfig config, int images, long pixels, torch.ScalarType dtype)
    {
        double width = config.BlockOutChannels[^1] / 512.0;
        return (long)(width * (DecoderFixedBytes + DecoderBytesPerPixel * images * pixels * ElementScale(dtype)));
    }

    /// <summary>The estimate for <paramref name="count"/> images of <paramref name="latentHeight"/>×<paramref name="latentWidth"/>
    /// latents on <paramref name="model"/>, with the given tilings (null: whole).</summary>
    public static MemoryEstimate For(StableDiffusionModel model, int count, bool guided, int latentHeight, int latentWidth,
        TilePlan? unetTiles, TilePlan? decoderTiles, long mappedWeightBytes)
    {
        long Tile(TilePlan? plan, int edge) => plan is null ? edge : Math.Min(plan.TileSize, edge);
        long unetTokens = Tile(unetTiles, latentHeight) * Tile(unetTiles, latentWidth);
        long decodePixels = Tile(decoderTiles, latentHeight) * Tile(decoderTiles, latentWidth) * model.VaeScaleFactor * model.VaeScaleFactor;
        long decoder = DecoderActivations(model.Vae.Config, count, decodePixels, model.VaeDType);
        if (decoderTiles is not null) // the blended float32 output and its weight map beside the tile's activations
            decoder += (long)count * 4 * 4 * latentHeight * latentWidth * model.VaeScaleFactor * model.VaeScaleFactor;
        return new MemoryEstimate
        {
            UnetBytes = UNetActivations(model.Unet.Config, guided ? 2 * count : count, unetTokens, model.Target.DType),
            DecoderBytes = decoder,
            MappedWeightBytes = mappedWeightBytes,
        };
    }

    /// <summary>Bytes per element relative to float32: the calibration's dtype.</summary>
    private static double ElementScale(torch.ScalarType dtype) => dtype is torch.ScalarType.Float32 ? 1.0 : 0.5;
}
