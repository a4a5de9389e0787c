using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// Refuses a call that cannot fit in memory before it runs (<see cref="NotEnoughMemoryException"/>): a 2048² image or
/// an untiled 1024² decode can exhaust a machine, and the system then kills the whole process with no message. CPU
/// only: on a GPU libtorch's own out-of-memory error is clean and is reported as such.
/// </summary>
internal static class MemoryBudget
{
    /// <summary>Checks the call against <paramref name="availableBytes"/> (null: unknown, nothing
    /// is refused).</summary>
    public static void Check(PipelineRun run, TilePlan? unetTiles, TilePlan? decoderTiles, long? availableBytes)
    {
        if (run.Device.type != DeviceType.CPU || availableBytes is not long available || Disabled()) return;
        var model = run.Model;
        // A LoRA swaps merged weights (ordinary memory) in for this call's layers, so only then are they counted anew.
        long mapped = run.Request.Loras.Count == 0
            ? model.MappedWeightBytes : MappedBytes(model.TextEncoder, model.Unet, model.Vae);
        MemoryEstimate Estimate(int latentHeight, int latentWidth, TilePlan? decoder) =>
            MemoryEstimator.For(model, run.Count, run.Guided, latentHeight, latentWidth, unetTiles, decoder, mapped);

        var estimate = Estimate(run.LatentHeight, run.LatentWidth, decoderTiles);
        run.Observer.Log?.Invoke(
            $"Memory: this call needs about {NotEnoughMemoryException.GiB(estimate.PeakBytes)} at its peak " +
            $"({estimate.PeakStage}), {NotEnoughMemoryException.GiB(available)} is available.");
        if (estimate.PeakBytes <= available) return;

        var tiled = new TilePlan(
            StableDiffusionPipeline.DefaultDecoderTileSize, StableDiffusionPipeline.DefaultDecoderTileSize / 4);
        bool tiledFits = decoderTiles is null
            && Estimate(run.LatentHeight, run.LatentWidth, tiled).PeakBytes <= available;
        throw new NotEnoughMemoryException(
            estimate, available, tiledFits,
            FittingSize(run, size => Estimate(size.h, size.w, decoderTiles).PeakBytes <= available));
    }

    /// <summary>The largest output size of the request's aspect ratio (in steps of 8 latent pixels) that
    /// fits, or null.</summary>
    private static (int Width, int Height)? FittingSize(PipelineRun run, Func<(int h, int w), bool> fits)
    {
        double aspect = (double)run.LatentWidth / run.LatentHeight;
        for (int h = run.LatentHeight - 8; h >= 8; h -= 8)
        {
            int w = Math.Max(8, (int)(h * aspect) / 8 * 8);
            if (fits((h, w))) return (w * run.Model.VaeScaleFactor, h * run.Model.VaeScaleFactor);
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
