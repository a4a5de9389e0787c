using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Lora;
using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// The memory check before a call (issue 12, part 4): a call whose estimated peak exceeds what is available is refused
/// before anything is allocated, saying what would fit. The estimate's calibration against measured peaks is in the
/// bench (bench/RESULTS.md), not here; these tests pin the behaviour around it.
/// </summary>
/// <remarks>The tests that set <see cref="NotEnoughMemoryException.SwitchVariable"/> run one at a time with every test
/// that expects a refusal (<see cref="MemoryCheckCollection"/>).</remarks>
[Collection(MemoryCheckCollection.Name)]
public sealed class MemoryBudgetTests(GoldenModels models) : IClassFixture<GoldenModels>
{
    private const long GiB = 1L << 30;

    private PipelineRun Run(int width, int height, int count = 1, double guidance = 7.5)
    {
        var model = models.Get("txt2img_v");
        var request = new GenerationRequest { Prompt = "a fox", Width = width, Height = height, Count = count, GuidanceScale = guidance };
        return new PipelineRun(model, request, PipelineObserver.None, new GeneratorNoiseSource(0))
        {
            Width = width, Height = height, LatentWidth = width / 8, LatentHeight = height / 8,
        };
    }

    [Fact]
    public void TheEstimateGrowsWithSizeAndBatch_AndTilingBoundsTheDecoder()
    {
        var model = models.Get("txt2img_v");
        var small = MemoryEstimator.For(model, 1, true, 64, 64, null, null, 0);
        var large = MemoryEstimator.For(model, 1, true, 256, 256, null, null, 0);
        var batch = MemoryEstimator.For(model, 4, true, 64, 64, null, null, 0);
        var unguided = MemoryEstimator.For(model, 1, false, 64, 64, null, null, 0);
        var tiles = new TilePlan(64, 16);
        var tiledDecode = MemoryEstimator.For(model, 1, true, 256, 256, null, tiles, 0);

        Assert.True(large.UnetBytes > small.UnetBytes && large.DecoderBytes > small.DecoderBytes);
        Assert.True(batch.UnetBytes > small.UnetBytes && batch.DecoderBytes > small.DecoderBytes);
        Assert.True(unguided.UnetBytes < small.UnetBytes); // no CFG batch of two
        Assert.Equal(large.UnetBytes, tiledDecode.UnetBytes);
        Assert.True(tiledDecode.DecoderBytes < large.DecoderBytes);
        Assert.Equal(Math.Max(large.UnetBytes, large.DecoderBytes) + 7, (large with { MappedWeightBytes = 7 }).PeakBytes);
    }

    /// <summary>
    /// A loaded model counts its mapped weights once, as a walk of its weights would; a call with a LoRA counts them anew,
    /// without the layers the LoRA swapped for merged (unmapped) weights, and the count is whole again afterwards.
    /// </summary>
    [Fact]
    public void MappedWeightsAreCountedOncePerModel_AndAnewUnderALora()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        long Walk() => MemoryBudget.MappedBytes(model.TextEncoder, model.Unet, model.Vae);
        long whole = Walk();
        Assert.True(whole > 0, "the golden model's float32 weights are views of its mapped safetensors files");
        Assert.Equal(whole, model.MappedWeightBytes);

        var lora = new LoraRequest(LoraFixtures.Path("style_kohya.safetensors"));
        var request = new GenerationRequest { Prompt = "a fox", Width = 4096, Height = 4096, Loras = [lora] };
        var run = new PipelineRun(model, request, PipelineObserver.None, new GeneratorNoiseSource(0))
        {
            Width = 4096, Height = 4096, LatentWidth = 512, LatentHeight = 512,
        };
        using (AppliedLoras.Apply(model, [lora]))
        {
            long swapped = Walk();
            Assert.True(swapped < whole, "the LoRA's merged weights are ordinary memory");
            var error = Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(run, null, null, availableBytes: 1));
            Assert.Equal(swapped, error.Estimate.MappedWeightBytes);
        }
        Assert.Equal(whole, Walk());
    }

    [Fact]
    public void ACallThatFits_IsNotRefused_AndTheLogSaysWhatItNeeds()
    {
        var lines = new List<string>();
        var run = Run(64, 64);
        var logged = new PipelineRun(run.Model, run.Request, new PipelineObserver { Log = lines.Add }, run.Noise)
        {
            Width = 64, Height = 64, LatentWidth = 8, LatentHeight = 8,
        };
        MemoryBudget.Check(logged, null, null, availableBytes: 16 * GiB);
        Assert.Contains(lines, line => line.StartsWith("Memory: this call needs about", StringComparison.Ordinal));
        MemoryBudget.Check(logged, null, null, availableBytes: null); // unknown: nothing to refuse on
    }

    [Fact]
    public void ACallThatCannotFit_IsRefusedWithTheEstimateAndWhatWouldFit()
    {
        var run = Run(4096, 4096);
        var estimate = MemoryEstimator.For(run.Model, 1, true, 512, 512, null, null, 0);
        long available = estimate.PeakBytes / 4;
        var error = Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(run, null, null, available));

        Assert.Equal(available, error.AvailableBytes);
        long mapped = error.Estimate.MappedWeightBytes;
        Assert.True(mapped > 0, "the golden model's float32 weights are views of its mapped safetensors files");
        Assert.Equal(estimate.PeakBytes + mapped, error.Estimate.PeakBytes);
        Assert.Contains("needs about", error.Message);
        Assert.Contains($"only {NotEnoughMemoryException.GiB(available)} is available", error.Message);
        // The size it offers fits (and one step larger would not); it keeps the aspect ratio.
        var (width, height) = Assert.NotNull(error.FittingSize);
        Assert.Equal(width, height);
        Assert.True(MemoryEstimator.For(run.Model, 1, true, height / 8, width / 8, null, null, mapped).PeakBytes <= available);
        Assert.True(MemoryEstimator.For(run.Model, 1, true, height / 8 + 8, width / 8 + 8, null, null, mapped).PeakBytes > available);
    }

    [Fact]
    public void WhenOnlyTheDecoderIsTooLarge_ATiledDecodeIsOffered()
    {
        var run = Run(4096, 4096, guidance: 1.0);
        var whole = MemoryEstimator.For(run.Model, 1, false, 512, 512, null, null, 0);
        var tiled = MemoryEstimator.For(run.Model, 1, false, 512, 512, null,
            new TilePlan(StableDiffusionPipeline.DefaultDecoderTileSize, StableDiffusionPipeline.DefaultDecoderTileSize / 4), 0);
        Assert.True(whole.DecoderBytes > whole.UnetBytes, "the tiny model's decode should be the peak at this size");
        long available = (tiled.PeakBytes + whole.PeakBytes) / 2;

        var error = Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(run, null, null, available));
        Assert.Equal("decoder", error.Estimate.PeakStage);
        Assert.True(error.TiledDecodeFits);
        Assert.Contains("a tiled decode (DecoderTileSize)", error.Message);
    }

    [Fact]
    public void GenerateRefusesAnImpossibleSize_BeforeAnyWork()
    {
        var model = models.Get("txt2img_v");
        var steps = 0;
        var observer = new PipelineObserver { Progress = _ => steps++ };
        var request = new GenerationRequest { Prompt = "a fox", Width = 65536, Height = 65536, Steps = 2 };
        Assert.Throws<NotEnoughMemoryException>(() => StableDiffusionPipeline.Generate(model, request, observer));
        Assert.Equal(0, steps);
    }

    [Fact]
    public void TheSwitchVariableTurnsTheCheckOff()
    {
        var run = Run(4096, 4096);
        var previous = Environment.GetEnvironmentVariable(NotEnoughMemoryException.SwitchVariable);
        try
        {
            Environment.SetEnvironmentVariable(NotEnoughMemoryException.SwitchVariable, "off");
            MemoryBudget.Check(run, null, null, availableBytes: 1);
        }
        finally
        {
            Environment.SetEnvironmentVariable(NotEnoughMemoryException.SwitchVariable, previous);
        }
        Assert.Throws<NotEnoughMemoryException>(() => MemoryBudget.Check(run, null, null, availableBytes: 1));
    }

    [Fact]
    public void AvailableMemory_ReadsMemAvailableAndTheCgroupLimit()
    {
        using var temp = new TempFolder("sd-meminfo-");
        File.WriteAllText(temp.Combine("meminfo"), "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   12000000 kB\n");
        Assert.Equal(12000000L * 1024, AvailableMemory.MeminfoAvailable(temp.Combine("meminfo")));

        Assert.Null(AvailableMemory.CgroupHeadroom(temp.Path)); // no cgroup files: no limit
        File.WriteAllText(temp.Combine("memory.max"), "max\n");
        File.WriteAllText(temp.Combine("memory.current"), "1000\n");
        Assert.Null(AvailableMemory.CgroupHeadroom(temp.Path));
        File.WriteAllText(temp.Combine("memory.max"), "8589934592\n");
        Assert.Equal(8589934592L - 1000, AvailableMemory.CgroupHeadroom(temp.Path));
        if (OperatingSystem.IsLinux()) Assert.True(AvailableMemory.CpuBytes() > 0);
    }
}
