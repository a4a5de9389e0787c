namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>
/// How much the engine's image may move from its float32 image in half precision (bfloat16 on the CPU, float16 on a
/// GPU), given what diffusers itself loses on the same golden case, device and dtype, with the same float32 noise
/// (tests/golden/bf16_reference.json on the CPU; bench/DeviceCheck/diffusers_golden.py on a GPU): at most
/// <see cref="Factor"/> times diffusers' largest and mean difference in 8-bit levels, plus 2 levels (max) and half a
/// level (mean), so a case where diffusers loses nothing still allows rounding.
/// </summary>
/// <remarks>
/// Rounding differences grow chaotically over the denoising steps on the tiny random models, so two correct
/// implementations land at different distances from float32 (on the AMD EPYC of 2026-12-07 the engine lost less than
/// diffusers in five cases and 13.0 against 10.9 mean levels in inpaint). Twice the reference's loss still tells a
/// correct one from a broken kernel, which moves the image by most of the range (libtorch 2.10's bfloat16 convolution
/// with a partial channel block: see NarrowConvolution).
/// </remarks>
internal static class ReducedPrecisionBound
{
    public const double Factor = 2.0;

    /// <summary>The (max, mean) bound in levels for a case where diffusers lost <paramref name="referenceMax"/> and
    /// <paramref name="referenceMean"/> levels.</summary>
    public static (double Max, double Mean) For(int referenceMax, double referenceMean) =>
        (Factor * referenceMax + 2, Factor * referenceMean + 0.5);

    /// <summary>The largest and the mean absolute difference between two 8-bit images of the same size, in levels.</summary>
    public static (int Max, double Mean) Levels(byte[] expected, byte[] actual)
    {
        if (expected.Length != actual.Length) return (int.MaxValue, double.PositiveInfinity);
        int max = 0;
        long sum = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            int difference = Math.Abs(expected[i] - actual[i]);
            max = Math.Max(max, difference);
            sum += difference;
        }
        return (max, expected.Length == 0 ? 0 : (double)sum / expected.Length);
    }
}
