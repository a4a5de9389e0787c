using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>-Precision Auto and friends, decided on a faked measurement; its per-machine cache; the record.</summary>
public sealed class PrecisionPolicyTests : IDisposable
{
    private readonly TempFolder _temp = new("sd-precision-");
    private int _measurements;

    public void Dispose() => _temp.Dispose();

    private Func<PrecisionSpeed> Measured(double float32Seconds, double bfloat16Seconds) => () =>
    {
        _measurements++;
        return new PrecisionSpeed(float32Seconds, bfloat16Seconds);
    };

    [Fact]
    public void AutoOnCudaIsFloat16WithoutMeasuring()
    {
        var choice = PrecisionPolicy.Choose(Precision.Auto, isCuda: true, Measured(0.1, 0.05));
        Assert.Equal(Precision.Float16, choice.Precision);
        Assert.Contains("upcast_attention", choice.Reason);
        Assert.Equal(0, _measurements);
    }

    [Theory]
    [InlineData(0.200, 0.090, Precision.BFloat16)] // 2.2x faster (AMD EPYC Zen 4, matmul)
    [InlineData(0.200, 0.180, Precision.BFloat16)] // 1.11x: just over the margin
    [InlineData(0.200, 0.190, Precision.Float32)]  // 1.05x: not worth bf16's rounding
    [InlineData(0.200, 0.255, Precision.Float32)]  // Intel Xeon without AMX: bf16 slower
    [InlineData(0.100, 6.000, Precision.Float32)]  // no bf16 instructions: 60x slower
    public void AutoOnTheCpuFollowsTheMeasurement(double float32Seconds, double bfloat16Seconds, Precision expected)
    {
        var choice = PrecisionPolicy.Choose(Precision.Auto, isCuda: false, Measured(float32Seconds, bfloat16Seconds));
        Assert.Equal(expected, choice.Precision);
        Assert.Equal(1, _measurements);
        Assert.StartsWith(expected == Precision.BFloat16 ? "bfloat16:" : "float32:", choice.Reason);
        Assert.Contains($"float32 {float32Seconds * 1000:F0} ms, bfloat16 {bfloat16Seconds * 1000:F0} ms", choice.Reason);
        Assert.Null(choice.Warning);
    }

    [Fact]
    public void AFailedMeasurementMeansFloat32AndSaysWhy()
    {
        var choice = PrecisionPolicy.Choose(Precision.Auto, isCuda: false, () => throw new InvalidOperationException("no oneDNN"));
        Assert.Equal(Precision.Float32, choice.Precision);
        Assert.Contains("no oneDNN", choice.Reason);
    }

    [Fact]
    public void ExplicitBFloat16RunsAndWarnsOnlyWhereItIsSlower()
    {
        var slower = PrecisionPolicy.Choose(Precision.BFloat16, isCuda: false, Measured(0.1, 0.3));
        Assert.Equal(Precision.BFloat16, slower.Precision);
        Assert.NotNull(slower.Warning);
        Assert.Contains("slower than float32", slower.Warning);
        Assert.Contains("-Precision Auto or Float32", slower.Warning);

        var faster = PrecisionPolicy.Choose(Precision.BFloat16, isCuda: false, Measured(0.2, 0.1));
        Assert.Equal(Precision.BFloat16, faster.Precision);
        Assert.Null(faster.Warning);
    }

    [Theory]
    [InlineData(Precision.Float32, false)]
    [InlineData(Precision.Float16, true)]
    [InlineData(Precision.BFloat16, true)]
    public void OtherExplicitChoicesAreKeptWithoutMeasuring(Precision requested, bool isCuda)
    {
        var choice = PrecisionPolicy.Choose(requested, isCuda, Measured(0.1, 0.05));
        Assert.Equal(requested, choice.Precision);
        Assert.Contains("as -Precision asked", choice.Reason);
        Assert.Equal(0, _measurements);
    }

    [Theory]
    [InlineData("float32", false, Precision.Float32)]
    [InlineData("bfloat16", false, Precision.BFloat16)]
    [InlineData("float16", true, Precision.Float16)]
    [InlineData("float16", false, Precision.Float32)] // float16 is CUDA-only: a CPU replay runs float32
    public void AReplayUsesTheRecordedPrecision(string recorded, bool isCuda, Precision expected)
    {
        var choice = PrecisionPolicy.FromRecord(recorded, isCuda);
        Assert.NotNull(choice);
        Assert.Equal(expected, choice.Precision);
        Assert.Contains("record", choice.Reason);
    }

    [Fact]
    public void ARecordWithoutADTypeLeavesTheChoiceToAuto() => Assert.Null(PrecisionPolicy.FromRecord(null, isCuda: false));

    [Fact]
    public void AutoIsNeverATarget()
    {
        var error = Assert.Throws<ArgumentException>(() => ComputeTarget.Parse("cpu", Precision.Auto));
        Assert.Contains("Auto", error.Message);
    }

    [Fact]
    public void TheMeasurementIsCachedPerMachineKey()
    {
        var cpu = new CpuDescription("Test CPU 9000", HasAvx512Bf16: true, HasAmxBf16: false);
        var path = Path.Combine(_temp.Path, "cache", "precision-speed.json");
        var first = new PrecisionSpeedCache(path).GetOrMeasure(PrecisionSpeedCache.MachineKey(cpu, 2), Measured(0.2, 0.1), out var cachedFirst);
        var again = new PrecisionSpeedCache(path).GetOrMeasure(PrecisionSpeedCache.MachineKey(cpu, 2), Measured(9, 9), out var cachedAgain);
        var otherThreads = new PrecisionSpeedCache(path).GetOrMeasure(PrecisionSpeedCache.MachineKey(cpu, 4), Measured(0.3, 0.6), out _);

        Assert.False(cachedFirst);
        Assert.True(cachedAgain);
        Assert.Equal(first, again);
        Assert.Equal(new PrecisionSpeed(0.3, 0.6), otherThreads);
        Assert.Equal(2, _measurements);
    }

    [Fact]
    public void ACorruptCacheFileIsMeasuredOverNotAnError()
    {
        var path = Path.Combine(_temp.Path, "precision-speed.json");
        File.WriteAllText(path, "{ not json");
        var speed = new PrecisionSpeedCache(path).GetOrMeasure("key", Measured(0.2, 0.1), out var cached);
        Assert.False(cached);
        Assert.Equal(2.0, speed.BFloat16Speedup, 6);
        Assert.True(new PrecisionSpeedCache(path).GetOrMeasure("key", Measured(9, 9), out _) == speed);
    }

    [Fact]
    public void TheRecordKeepsTheReason()
    {
        var record = new GenerationRecord { DType = "bfloat16", PrecisionReason = "bfloat16: measured faster than float32 on this CPU." };
        var json = record.ToJson();
        Assert.Contains("\"precision_reason\":\"bfloat16: measured faster", json);
        Assert.Equal(record.PrecisionReason, GenerationRecord.FromJson(json).PrecisionReason);
    }

    [Fact]
    public void ACudaDeviceThisMachineLacksIsAClearError()
    {
        // cuda:1 on a CPU build or a one-GPU machine; one past the last GPU elsewhere.
        var count = TorchSharp.torch.cuda.is_available() ? TorchSharp.torch.cuda.device_count() : 0;
        var device = $"cuda:{Math.Max(1, count)}";
        var error = Record.Exception(() => ComputeTarget.Parse(device, Precision.Float32));
        Assert.True(error is ArgumentException or NotSupportedException, $"unexpected {error?.GetType().Name ?? "no error"}");
        Assert.Contains($"'{device}'", error!.Message);
        Assert.Contains(count == 0 ? "no usable CUDA backend" : "does not exist", error.Message);
    }
}
