using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// Refuses a call that cannot fit in its device's memory before it runs (<see cref="NotEnoughMemoryException"/>). On
/// the CPU a 2048² image or an untiled 1024² decode can exhaust the machine, and the system then kills the whole
/// process with no message. On a GPU libtorch's own out-of-memory error is clean (and reported as InsufficientMemory
/// too), but comes after the call has run its steps; the check refuses at once, saying what would fit.
/// </summary>
internal static class MemoryBudget
{
    /// <summary>Checks the call against <paramref name="memory"/>, the run's device's (unknown: nothing is refused).
    /// Returns the estimate; null when the check is turned off.</summary>
    public static MemoryEstimate? Check(PipelineRun run, TilePlan? unetTiles, TilePlan? decoderTiles,
        DeviceMemory memory)
    {
        var model = run.Model;
        // A LoRA swaps merged weights (ordinary memory) in for this call's layers, so only then are they counted anew.
        long mapped = !memory.CountsMappedWeights ? 0
            : run.Request.Loras.Count == 0 ? model.MappedWeightBytes
            : MappedBytes(model.TextEncoder, model.Unet, model.Vae);
        var call = MemoryCall.Of(model, run.Count, run.Guided, run.LatentHeight, run.LatentWidth, unetTiles,
            decoderTiles, mapped);
        return Check(call, memory, run.Observer.Log);
    }

    /// <summary>Checks the call against <paramref name="availableBytes"/> of CPU memory (null: unknown).</summary>
    public static MemoryEstimate? Check(PipelineRun run, TilePlan? unetTiles, TilePlan? decoderTiles,
        long? availableBytes) =>
        Check(run, unetTiles, decoderTiles, DeviceMemory.Cpu(availableBytes));

    /// <summary>Checks <paramref name="call"/> against <paramref name="memory"/>, saying both through
    /// <paramref name="log"/>.</summary>
    internal static MemoryEstimate? Check(MemoryCall call, DeviceMemory memory, Action<string>? log)
    {
        if (Disabled())
        {
            log?.Invoke($"Memory: not checked ({NotEnoughMemoryException.SwitchVariable} turns the check off).");
            return null;
        }
        var estimate = MemoryEstimator.For(call);
        log?.Invoke(
            $"Memory: this call needs about {NotEnoughMemoryException.GiB(estimate.PeakBytes)} at its peak " +
            $"({estimate.PeakStage}); {memory.Describe()}.");
        if (memory.AvailableBytes is long available && estimate.PeakBytes > available)
            throw Refusal(call, memory, estimate, available);
        memory.RecordRun(estimate.PeakBytes);
        return estimate;
    }

    /// <summary>The refusal, with what would fit: a tiled decode, a smaller size, freeing other cached
    /// models.</summary>
    private static NotEnoughMemoryException Refusal(
        MemoryCall call, DeviceMemory memory, MemoryEstimate estimate, long available)
    {
        var tiled = new TilePlan(
            StableDiffusionPipeline.DefaultDecoderTileSize, StableDiffusionPipeline.DefaultDecoderTileSize / 4);
        bool tiledFits = call.DecoderTiles is null
            && MemoryEstimator.For(call with { DecoderTiles = tiled }).PeakBytes <= available;
        var size = FittingSize(call, smaller => MemoryEstimator.For(smaller).PeakBytes <= available);
        return new NotEnoughMemoryException(estimate, memory, tiledFits, size);
    }

    /// <summary>The largest output size of the call's aspect ratio (in steps of 8 latent pixels) that
    /// fits, or null.</summary>
    private static (int Width, int Height)? FittingSize(MemoryCall call, Func<MemoryCall, bool> fits)
    {
        double aspect = (double)call.LatentWidth / call.LatentHeight;
        for (int h = call.LatentHeight - 8; h >= 8; h -= 8)
        {
            int w = Math.Max(8, (int)(h * aspect) / 8 * 8);
            if (fits(call with { LatentHeight = h, LatentWidth = w }))
                return (w * call.VaeScaleFactor, h * call.VaeScaleFactor);
        }
        return null;
    }

    /// <summary>Bytes of the modules' weights that view a mapped file (they live in the page cache, which
    /// MemAvailable counts as free). Walks every parameter: <see cref="StableDiffusionModel.MappedWeightBytes"/> keeps
    /// the count of a loaded model.</summary>
    internal static long MappedBytes(params torch.nn.Module[] modules) =>
        modules
            .SelectMany(module => module.parameters())
            .Where(MappedWeights.IsMapped)
            .Sum(p => p.NumberOfElements * p.ElementSize);

    private static bool Disabled() =>
        Environment.GetEnvironmentVariable(NotEnoughMemoryException.SwitchVariable)
            ?.Trim()
            .ToUpperInvariant() is "0" or "OFF" or "FALSE" or "NO";
}
