using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The rules a request must follow, in one place, for every caller of the engine. <see cref="Check"/> needs no model,
/// so a cmdlet calls it before anything loads; the pipeline calls it again with the model (scheduler options against
/// the model's own scheduler). Errors are <see cref="ArgumentException"/>s whose ParamName is the request property
/// at fault and whose message starts with that name.
/// </summary>
public static class RequestRules
{
    /// <summary>Explicit sizes are multiples of the SD VAE factor (image inputs of other sizes are
    /// rounded down).</summary>
    public const int SizeMultiple = 8;

    /// <summary>The x4 upscaler's max_noise_level (diffusers' default and the released model's).</summary>
    public const int MaxNoiseLevel = UpscaleTask.MaxNoiseLevel;

    /// <summary>Checks what needs no model: counts, sizes, strength, noise level, tiles, the scheduler and
    /// its options.</summary>
    /// <param name="modelScheduler">The model's own scheduler class, when known; the options are checked against it
    /// when the request names no scheduler.</param>
    public static void Check(GenerationRequest request, string? modelScheduler = null)
    {
        if (request.Steps < 1) throw OutOfRange(nameof(request.Steps), request.Steps, "must be at least 1");
        if (request.Count < 1) throw OutOfRange(nameof(request.Count), request.Count, "must be at least 1");
        if (!double.IsFinite(request.GuidanceScale))
            throw OutOfRange(nameof(request.GuidanceScale), request.GuidanceScale, "must be a finite number");
        if (request.Width is int width) CheckMultiple(nameof(request.Width), width, SizeMultiple);
        if (request.Height is int height) CheckMultiple(nameof(request.Height), height, SizeMultiple);
        CheckTiles(request);
        CheckInput(request.Input);
        CheckScheduler(request, modelScheduler);
    }

    /// <summary>A positive multiple of <paramref name="multiple"/>.</summary>
    public static void CheckMultiple(string name, int value, int multiple)
    {
        if (value < multiple || value % multiple != 0)
            throw OutOfRange(name, value, $"must be a positive multiple of {multiple}");
    }

    private static void CheckInput(TaskInput input)
    {
        double? strength = input switch
        {
            ImageToImageInput i => i.Strength,
            InpaintInput i => i.Strength,
            DepthToImageInput i => i.Strength,
            _ => null,
        };
        if (strength is double s && (double.IsNaN(s) || s <= 0 || s > 1))
            throw OutOfRange("Strength", s, "must be in (0, 1]: 0 would run no denoising step at all");
        if (input is UpscaleInput { NoiseLevel: < 0 or > MaxNoiseLevel } upscale)
            throw OutOfRange(nameof(UpscaleInput.NoiseLevel), upscale.NoiseLevel, $"must be in 0..{MaxNoiseLevel}");
    }

    private static void CheckTiles(GenerationRequest request)
    {
        if (request.TileSize is < 0)
            throw OutOfRange(nameof(request.TileSize), request.TileSize, "must be 0 (no tiling) or positive");
        if (request.DecoderTileSize is < 0)
            throw OutOfRange(
                nameof(request.DecoderTileSize), request.DecoderTileSize, "must be 0 (no tiling) or positive");
        if (request.TileOverlap is < 0)
            throw OutOfRange(nameof(request.TileOverlap), request.TileOverlap, "must not be negative");
    }

    /// <summary>A known scheduler, and eta / Karras sigmas only where that scheduler takes them.</summary>
    private static void CheckScheduler(GenerationRequest request, string? modelScheduler)
    {
        if (request.Scheduler is { } name && !SchedulerRegistry.TryResolve(name, out _))
            throw new UnknownSchedulerException(name, SchedulerRegistry.AllNames);
        var scheduler = request.Scheduler ?? modelScheduler;
        if (scheduler is not null) SchedulerRegistry.ValidateOptions(scheduler, request.Eta, request.KarrasSigmas);
    }

    private static ArgumentOutOfRangeException OutOfRange(string name, object? value, string rule) =>
        new(name, value, $"{name} {rule}, not {value}.");
}
