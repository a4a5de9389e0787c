using PSStableDiffusion.Engine.Runtime;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>How long this CPU takes for the same work in float32 and in bfloat16 (one measurement).</summary>
/// <param name="Float32Seconds">Best time of the probe work in float32.</param>
/// <param name="BFloat16Seconds">Best time of the same work in bfloat16 (or its first run, when that alone was
/// far slower than float32 and the probe stopped early).</param>
public sealed record PrecisionSpeed(double Float32Seconds, double BFloat16Seconds)
{
    /// <summary>float32 time over bfloat16 time: above 1, bfloat16 is faster.</summary>
    public double BFloat16Speedup => Float32Seconds / BFloat16Seconds;

    /// <summary>
    /// Times the SD 2.x UNet's dominant kernels at its top-level width in both dtypes: a 3x3 convolution 320→320 on a
    /// 16² map (batch 2) and a linear layer 320→1280 on 1024 tokens (about 0.9 GFLOP each). Each dtype runs once to
    /// warm up (oneDNN builds its kernels then), then three rounds alternate the dtypes, so a burst of load from other
    /// processes hits both alike; the best time of each counts. A bfloat16 warm-up already 10x slower than float32's
    /// ends the probe (CPUs without bf16 instructions are 6–100x slower; no need to wait). About 0.1–0.5 s on an idle
    /// 2-core machine.
    /// </summary>
    public static PrecisionSpeed Measure()
    {
        using var noGrad = torch.no_grad();
        using var float32 = new ProbeWork(ScalarType.Float32);
        using var bfloat16 = new ProbeWork(ScalarType.BFloat16);
        double float32Best = float32.Run(), bfloat16Best = bfloat16.Run();
        if (bfloat16Best > 10 * float32Best) return new PrecisionSpeed(float32Best, bfloat16Best);
        (float32Best, bfloat16Best) = (double.MaxValue, double.MaxValue);
        for (var round = 0; round < 3; round++)
        {
            float32Best = Math.Min(float32Best, float32.Run());
            bfloat16Best = Math.Min(bfloat16Best, bfloat16.Run());
        }
        return new PrecisionSpeed(float32Best, bfloat16Best);
    }

    private sealed class ProbeWork : IDisposable
    {
        private readonly Tensor _image;  // [2, 320, 16, 16]
        private readonly Tensor _kernel; // [320, 320, 3, 3]
        private readonly Tensor _tokens; // [1, 1024, 320]
        private readonly Tensor _weight; // [1280, 320]

        public ProbeWork(ScalarType dtype)
        {
            var generator = new torch.Generator(1234);
            using var image = torch.randn(new long[] { 2, 320, 16, 16 }, generator: generator);
            using var kernel =
                (torch.randn(new long[] { 320, 320, 3, 3 }, generator: generator).ScalarSafe() * 0.02).Tensor;
            using var tokens = torch.randn(new long[] { 1, 1024, 320 }, generator: generator);
            using var weight = (torch.randn(new long[] { 1280, 320 }, generator: generator).ScalarSafe() * 0.05).Tensor;
            (_image, _kernel, _tokens, _weight) =
                (image.to(dtype), kernel.to(dtype), tokens.to(dtype), weight.to(dtype));
        }

        /// <returns>Seconds for one convolution and one linear layer.</returns>
        public double Run()
        {
            var clock = Stopwatch.StartNew();
            using (nn.functional.conv2d(_image, _kernel, padding: new long[] { 1, 1 })) { } // [2, 320, 16, 16]
            using (nn.functional.linear(_tokens, _weight)) { }                              // [1, 1024, 1280]
            return clock.Elapsed.TotalSeconds;
        }

        public void Dispose()
        {
            _image.Dispose();
            _kernel.Dispose();
            _tokens.Dispose();
            _weight.Dispose();
        }
    }
}
