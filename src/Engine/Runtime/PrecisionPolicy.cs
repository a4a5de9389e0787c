using System.Globalization;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Resolves <c>-Precision</c>: Auto picks float16 on CUDA and, on a CPU, bfloat16 only where a measurement on this
/// machine shows it clearly faster than float32 (libtorch's bf16 speed varies from 2x faster to 100x slower between
/// CPUs that all claim AVX-512, so no rule on the CPU flags can decide). A replay uses the precision its record names.
/// </summary>
public static class PrecisionPolicy
{
    /// <summary>bfloat16 must beat float32 by this factor: it costs accuracy, so a tie goes to float32.</summary>
    public const double RequiredBFloat16Speedup = 1.1;

    /// <param name="requested">What -Precision said (Auto by default).</param>
    /// <param name="isCuda">Whether the target device is a CUDA device.</param>
    /// <param name="measure">This CPU's speed measurement (cached per machine); only called on the CPU
    /// when it matters.</param>
    public static PrecisionChoice Choose(Precision requested, bool isCuda, Func<PrecisionSpeed> measure)
    {
        switch (requested)
        {
            case Precision.Auto when isCuda:
                return new(
                    Precision.Float16, "float16: the default on CUDA (attention runs in float32 where the model's " +
                    "config sets upcast_attention, as SD 2.1 768-v does).");
            case Precision.Auto:
                return ChooseOnCpu(measure);
            case Precision.BFloat16 when !isCuda:
                return BFloat16AsAsked(measure);
            default:
                return new(requested, $"{Name(requested)}: as -Precision asked.");
        }
    }

    /// <summary>
    /// A replay's precision: the dtype its record names (a replay must paint the same picture), unless the device
    /// cannot run it (float16 recorded on CUDA, replayed on the CPU: float32). Null when the record names none.
    /// </summary>
    public static PrecisionChoice? FromRecord(string? recordedDType, bool isCuda) => recordedDType switch
    {
        "float32" => new(Precision.Float32, "float32: as the replayed image's record says."),
        "bfloat16" => new(Precision.BFloat16, "bfloat16: as the replayed image's record says."),
        "float16" when isCuda => new(Precision.Float16, "float16: as the replayed image's record says."),
        "float16" =>
            new(Precision.Float32, "float32: the replayed image's record says float16, which runs on CUDA only; " +
            "the CPU replay uses float32, so it will differ slightly."),
        _ => null,
    };

    private static PrecisionChoice ChooseOnCpu(Func<PrecisionSpeed> measure)
    {
        var speed = TryMeasure(measure, out var failure);
        if (speed is null)
            return new(Precision.Float32, $"float32: the bfloat16 speed measurement failed ({failure}).");
        var figures = Figures(speed);
        return speed.BFloat16Speedup >= RequiredBFloat16Speedup
            ? new(Precision.BFloat16, $"bfloat16: measured faster than float32 on this CPU ({figures}).")
            : new(
                Precision.Float32,
                "float32: bfloat16 is not at least " +
                $"{RequiredBFloat16Speedup.ToString(CultureInfo.InvariantCulture)}x " +
                $"faster on this CPU ({figures}).");
    }

    private static PrecisionChoice BFloat16AsAsked(Func<PrecisionSpeed> measure)
    {
        var speed = TryMeasure(measure, out _);
        if (speed is null || speed.BFloat16Speedup >= 1.0)
            return new(Precision.BFloat16, "bfloat16: as -Precision asked.");
        var figures = Figures(speed);
        return new(
            Precision.BFloat16, $"bfloat16: as -Precision asked, though slower than float32 on this CPU ({figures}).",
            $"bfloat16 is slower than float32 on this CPU ({figures}); -Precision Auto or Float32 would be faster.");
    }

    private static PrecisionSpeed? TryMeasure(Func<PrecisionSpeed> measure, out string? failure)
    {
        try
        {
            failure = null;
            return measure();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failure = e.Message;
            return null;
        }
    }

    private static string Figures(PrecisionSpeed speed) => string.Create(CultureInfo.InvariantCulture,
        $"UNet kernels: float32 {speed.Float32Seconds * 1000:F0} ms, bfloat16 {speed.BFloat16Seconds * 1000:F0} ms, " +
        $"{speed.BFloat16Speedup:F2}x");

    private static string Name(Precision precision) => precision switch
    {
        Precision.BFloat16 => "bfloat16",
        Precision.Float16 => "float16",
        _ => "float32",
    };
}
