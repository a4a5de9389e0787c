using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Pipelines;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// The memory check on a CUDA device (issue 12, part 4), with a faked driver reading: no GPU is here. The calls are
/// full-size SD 2.1 768-v in float16 (the UNet in float16, the VAE upcast to float32 as the engine runs it), estimated
/// from the embedded configs. The GPU figures below are the fake driver's inputs (a card of that size with the weights
/// and a context in use), not measurements; what the estimate is worth on a real GPU is the device check's to show.
/// </summary>
[Collection(MemoryCheckCollection.Name)]
public sealed class CudaMemoryBudgetTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    private const long GiB = 1L << 30;
    private const long MiB = 1L << 20;
    // Stand-ins for what a loaded float16 SD 2.1 holds on the card, and for the CUDA context and libraries.
    private const long Weights = 2 * GiB + 600 * MiB;
    private const long Context = 500 * MiB;

    private sealed class FakeGpu(long total, long used) : IGpuMemoryProvider
    {
        public long Used { get; set; } = used;
        public GpuMemoryReading Read(int ordinal) =>
            GpuMemoryReading.Known(ordinal, total - Used, total, $"Fake {total / GiB} GiB GPU", "fake driver");
    }

    private sealed class UnknownGpu : IGpuMemoryProvider
    {
        public GpuMemoryReading Read(int ordinal) =>
            GpuMemoryReading.Unknown(ordinal, "fake driver", "the NVIDIA driver library could not be loaded");
    }

    private static MemoryCall Sd21(int size, int count = 1, TilePlan? decoderTiles = null) =>
        new(KnownModelConfigs.UNet(KnownModel.Sd21_768V), KnownModelConfigs.Vae(KnownModel.Sd21_768V),
            ScalarType.Float16,
            StableDiffusionModel.ResolveVaeDType(4, ScalarType.Float16, KnownModelConfigs.Vae(KnownModel.Sd21_768V).ForceUpcast),
            count, Guided: true, size / 8, size / 8, UnetTiles: null, decoderTiles, MappedWeightBytes: 0);

    private static DeviceMemory Card(IGpuMemoryProvider gpu, CudaAllocatorCache? cache = null, long others = 0) =>
        DeviceMemory.Cuda(0, gpu, Weights + others, others, cache ?? new CudaAllocatorCache());

    [Fact]
    public void Float16HalvesTheActivations_AndTheWeightsAreNotCounted()
    {
        var half = MemoryEstimator.For(Sd21(1024));
        var full = MemoryEstimator.For(Sd21(1024) with { UnetDType = ScalarType.Float32, VaeDType = ScalarType.Float32 });
        Assert.Equal(0, half.MappedWeightBytes);
        // The part that grows with the tokens halves; the fixed part (SD 2.1's UNet is 320 wide: scale 1) stays.
        long fixedPart = (long)MemoryEstimator.UnetFixedBytes;
        Assert.InRange(half.UnetBytes - fixedPart, (full.UnetBytes - fixedPart) / 2 - 1, (full.UnetBytes - fixedPart) / 2 + 1);
        Assert.Equal(full.DecoderBytes, half.DecoderBytes); // SD 2.1's VAE is upcast: float32 in both
    }

    [Fact]
    public void An80GiBCard_Fits1024_AndVerboseSaysWhatWasFoundWhereAndFromWhat()
    {
        var lines = new List<string>();
        var estimate = MemoryBudget.Check(Sd21(1024), Card(new FakeGpu(80 * GiB, Weights + Context)), lines.Add);
        output.WriteLine(string.Join("\n", lines));

        Assert.NotNull(estimate);
        var line = Assert.Single(lines);
        Assert.StartsWith($"Memory: this call needs about {NotEnoughMemoryException.GiB(estimate.PeakBytes)} at its peak", line);
        Assert.Contains($"is available on cuda:0 (Fake 80 GiB GPU): {NotEnoughMemoryException.GiB(80 * GiB - Weights - Context)} free of 80.0 GiB (fake driver)", line);
        Assert.Contains($"the {NotEnoughMemoryException.GiB(Weights)} of weights loaded there are already in use", line);
    }

    [Fact]
    public void A4GiBCard_Refuses2048_SayingWhatIsFreeOnWhichDevice_AndWhatWouldFit()
    {
        var gpu = new FakeGpu(4 * GiB, Weights + Context);
        var memory = Card(gpu);
        var error = Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(Sd21(2048), memory, null));
        output.WriteLine(error.Message);

        long available = 4 * GiB - Weights - Context;
        Assert.Equal(available, error.AvailableBytes);
        Assert.Equal("cuda:0", error.Device);
        Assert.Equal(MemoryEstimator.For(Sd21(2048)).PeakBytes, error.Estimate.PeakBytes);
        Assert.StartsWith($"This call needs about {NotEnoughMemoryException.GiB(error.Estimate.PeakBytes)} on cuda:0 (Fake 4 GiB GPU) at its peak", error.Message);
        Assert.Contains($"but only {NotEnoughMemoryException.GiB(available)} is available there: {NotEnoughMemoryException.GiB(available)} free of 4.0 GiB (fake driver)", error.Message);
        // The tiled decode is offered exactly when it fits; the size offered fits, and one step larger does not.
        Assert.Equal(MemoryEstimator.For(Sd21(2048, decoderTiles: DefaultTiles)).PeakBytes <= available, error.TiledDecodeFits);
        var (width, height) = Assert.NotNull(error.FittingSize);
        Assert.Equal(width, height);
        Assert.True(MemoryEstimator.For(Sd21(width)).PeakBytes <= available);
        Assert.True(MemoryEstimator.For(Sd21(width + 64)).PeakBytes > available);
        Assert.Contains($"a size of at most {width}x{height}", error.Message);
    }

    [Fact]
    public void WhenOnlyTheDecoderIsTooLarge_OnTheGpu_ATiledDecodeIsOffered()
    {
        var whole = MemoryEstimator.For(Sd21(1024)).PeakBytes;
        var tiled = MemoryEstimator.For(Sd21(1024, decoderTiles: DefaultTiles)).PeakBytes;
        Assert.True(tiled < whole, "at 1024² the untiled decode should set the peak");
        long free = (tiled + whole) / 2;
        var error = Assert.Throws<NotEnoughMemoryException>(
            () => MemoryBudget.Check(Sd21(1024), Card(new FakeGpu(16 * GiB, 16 * GiB - free)), null));
        Assert.Equal("decoder", error.Estimate.PeakStage);
        Assert.True(error.TiledDecodeFits);
        Assert.Contains("a tiled decode (DecoderTileSize)", error.Message);
    }

    [Fact]
    public void OtherModelsOnTheCard_AreNamedWithWhatTheyHold_WhenFreeingThemWouldMakeRoom()
    {
        long peak = MemoryEstimator.For(Sd21(1024)).PeakBytes;
        long others = 3 * GiB;
        long free = peak - GiB; // short by 1 GiB; the other models hold 3
        var error = Assert.Throws<NotEnoughMemoryException>(
            () => MemoryBudget.Check(Sd21(1024), Card(new FakeGpu(24 * GiB, 24 * GiB - free), others: others), null));
        Assert.True(error.FreeingOtherModelsFits);
        Assert.Contains($"freeing the other cached models on cuda:0 (they hold {NotEnoughMemoryException.GiB(others)})", error.Message);
    }

    /// <summary>
    /// libtorch keeps a call's freed activations cached, and the driver counts them as used: the same call asked again
    /// is not refused, because the account adds back what the first call left in the cache.
    /// </summary>
    [Fact]
    public void ACallThatRan_IsNotRefusedTheSecondTime_ForTheBlocksLibtorchKeptCached()
    {
        long peak = MemoryEstimator.For(Sd21(1024)).PeakBytes;
        var gpu = new FakeGpu(Weights + Context + peak + GiB, Weights + Context);
        var cache = new CudaAllocatorCache();
        MemoryBudget.Check(Sd21(1024), Card(gpu, cache), null);
        gpu.Used += peak; // the first call's activations, now in libtorch's cache

        var again = Card(gpu, cache);
        Assert.Equal(peak, again.CachedBytes);
        Assert.Equal(peak + GiB, again.AvailableBytes);
        MemoryBudget.Check(Sd21(1024), again, null);
        Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(Sd21(1024), Card(gpu), null)); // no account
    }

    [Fact]
    public void TheAllocatorAccount_GivesBackTheWeightsOfAClearedModel()
    {
        var cache = new CudaAllocatorCache();
        cache.Record(0, 10 * GiB); // 6 GiB of weights (two models) and a call of 4 GiB ran
        Assert.Equal(4 * GiB, cache.Reusable(0, residentBytes: 6 * GiB));
        Assert.Equal(7 * GiB, cache.Reusable(0, residentBytes: 3 * GiB)); // one model cleared: its weights are cached
        Assert.Equal(0, cache.Reusable(1, residentBytes: 3 * GiB));       // another device has its own
        cache.Record(0, 2 * GiB);                                          // a smaller call leaves the mark
        Assert.Equal(4 * GiB, cache.Reusable(0, residentBytes: 6 * GiB));
    }

    [Fact]
    public void AnUnknownReading_RefusesNothing_AndVerboseSaysWhy()
    {
        var lines = new List<string>();
        Assert.NotNull(MemoryBudget.Check(Sd21(8192), Card(new UnknownGpu()), lines.Add));
        Assert.Contains("the memory available on cuda:0 is unknown (the NVIDIA driver library could not be loaded; fake driver), so nothing is refused", Assert.Single(lines));
    }

    /// <summary>On a GPU the weights are copies already in use there: the loaded model's mapped weights, which the
    /// CPU check counts, are left out.</summary>
    [Fact]
    public void ARunOnTheGpu_LeavesTheMappedWeightsOut()
    {
        var model = models.Get("txt2img_v");
        var request = new GenerationRequest { Prompt = "a fox", Width = 64, Height = 64 };
        var run = new PipelineRun(model, request, PipelineObserver.None, new GeneratorNoiseSource(0))
        {
            Width = 64, Height = 64, LatentWidth = 8, LatentHeight = 8,
        };
        Assert.True(model.MappedWeightBytes > 0);
        var cpu = MemoryBudget.Check(run, null, null, DeviceMemory.Cpu(64 * GiB));
        var gpu = MemoryBudget.Check(run, null, null, Card(new FakeGpu(64 * GiB, 0)));
        Assert.Equal(model.MappedWeightBytes, cpu!.MappedWeightBytes);
        Assert.Equal(0, gpu!.MappedWeightBytes);
        Assert.Equal(cpu.PeakBytes - model.MappedWeightBytes, gpu.PeakBytes);
    }

    [Fact]
    public void TheEngineCacheCountsTheOtherModelsOnADevice()
    {
        var cache = new EngineCache();
        var engines = new Dictionary<string, SizedEngine>
        {
            ["a"] = new(3 * GiB), ["b"] = new(2 * GiB), ["c"] = new(5 * GiB),
        };
        var gpu = new ComputeTarget("cuda:0", Precision.Float16);
        foreach (var (name, target) in new[] { ("a", gpu), ("b", gpu), ("c", ComputeTarget.Cpu32) })
            cache.Acquire(new EngineKey(name, target), () => engines[name], CancellationToken.None).Dispose();

        Assert.Equal(5 * GiB, cache.WeightBytesOn("cuda:0"));
        Assert.Equal(2 * GiB, cache.WeightBytesOn("cuda:0", except: engines["a"]));
        Assert.Equal(0, cache.WeightBytesOn("cuda:1"));
        cache.Clear();
    }

    private static TilePlan DefaultTiles => new(
        StableDiffusionPipeline.DefaultDecoderTileSize, StableDiffusionPipeline.DefaultDecoderTileSize / 4);

    private sealed class SizedEngine(long bytes) : ICachedEngine
    {
        public long MemoryBytes => bytes;
        public string KindName => "sized";
        public void Dispose() { }
    }
}
