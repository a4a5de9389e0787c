namespace PSStableDiffusion.Bench;

/// <summary>
/// Floating-point operations (multiply and add counted separately) of each measured piece of work.
/// UNet and VAE 512² figures are from /work/shared/notes/perf-anchors.md (counted on the diffusers model);
/// the others are counted here.
/// </summary>
internal static class Flops
{
    /// <summary>One UNet call at 512² (64² latents), batch 2 (CFG): conv 0.84, linear 0.52, attention 0.25 TFLOP.</summary>
    public const double UNet512 = 1.61e12;

    /// <summary>One UNet call at 768² (96² latents), batch 2: conv 1.88, linear 1.16, attention 1.26 TFLOP.</summary>
    public const double UNet768 = 4.30e12;

    /// <summary>VAE decode of one 512² image.</summary>
    public const double VaeDecode512 = 2.51e12;

    /// <summary>
    /// VAE decode of one 768² image: the convolutions scale with the pixel count (×2.25) and the mid-block
    /// self-attention (512 channels over the latent pixels) with its square: 2.476·2.25 + 0.174 ≈ 5.75 TFLOP.
    /// </summary>
    public const double VaeDecode768 = 5.75e12;

    /// <summary>
    /// OpenCLIP ViT-H text tower, 23 layers of width 1024 (MLP 4096), 77 tokens, batch 2:
    /// 2·(12·1024²·23·154) for the projections and MLPs plus 2·(2·77²·1024·23·2) for attention ≈ 90 GFLOP.
    /// </summary>
    public const double TextEncoderBatch2 = 2.0 * 12 * 1024 * 1024 * 23 * 154 + 2.0 * 2 * 77 * 77 * 1024 * 23 * 2;

    public static double Txt2Img512(int steps) => steps * UNet512 + VaeDecode512 + TextEncoderBatch2;

    public static double Matmul(long n) => 2.0 * n * n * n;

    /// <summary>3×3 convolution, <paramref name="channels"/> → <paramref name="channels"/>, on batch × size².</summary>
    public static double Conv3x3(long batch, long channels, long size) => 2.0 * batch * channels * channels * 9 * size * size;

    /// <summary>Attention QKᵀ and (softmax)V on [B, H, N, d]: two matmuls of B·H·N²·d multiply-adds.</summary>
    public static double Attention(long batch, long heads, long tokens, long dim) => 4.0 * batch * heads * tokens * tokens * dim;
}
