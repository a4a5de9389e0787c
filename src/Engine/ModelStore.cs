using System.Diagnostics;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>How to get a model in, beyond its path: the options of <c>-Model</c>'s companions on every cmdlet.</summary>
public sealed record ModelLoadOptions
{
    public static ModelLoadOptions Default { get; } = new();

    /// <summary>Single files: an ldm YAML to use instead of the one beside the file or detection.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>Single files: epsilon or v_prediction, overriding what the file suggests.</summary>
    public string? PredictionType { get; init; }

    /// <summary>Hub ids: branch, tag or commit (default main).</summary>
    public string? Revision { get; init; }

    /// <summary>Hub ids: a weights variant such as fp16 (<c>*.fp16.safetensors</c>).</summary>
    public string? Variant { get; init; }

    /// <summary>Hub ids: an access token for gated repositories (else HF_TOKEN).</summary>
    public string? Token { get; init; }

    /// <summary>Hub ids: download progress (file, bytes, speed).</summary>
    public Action<string, long, long, double>? DownloadProgress { get; init; }

    /// <summary>A string that tells load options apart in the engine cache key.</summary>
    public string CacheKey => $"{ConfigPath}|{PredictionType}|{Revision}|{Variant}";
}

/// <summary>
/// Resolves what a user passes as <c>-Model</c> and hands out leases on the loaded model from the shared
/// <see cref="EngineCache"/>, loading it on first use.
/// </summary>
public static class ModelStore
{
    /// <summary>
    /// A lease on the model at <paramref name="modelPath"/> (a diffusers folder) on <paramref name="target"/>.
    /// <paramref name="log"/> says whether it was loaded now (and how long it took) or reused from the cache.
    /// </summary>
    public static EngineLease<StableDiffusionModel> Acquire(string modelPath, ComputeTarget target, Action<string>? log,
        CancellationToken cancellation)
    {
        var fullPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelPath));
        if (!Directory.Exists(fullPath))
        {
            throw File.Exists(fullPath)
                ? new NotSupportedException($"'{fullPath}' is a file; -Model takes a diffusers model folder (one with model_index.json).")
                : new DirectoryNotFoundException($"Model folder '{fullPath}' does not exist.");
        }
        var key = new EngineKey(fullPath, target);
        bool loadedNow = false;
        var clock = Stopwatch.StartNew();
        var lease = EngineCache.Shared.Acquire(key, () =>
        {
            loadedNow = true;
            log?.Invoke($"Loading the diffusers model '{fullPath}' on {target.DeviceName} in {target.DTypeName} (not in the engine cache yet).");
            return StableDiffusionModel.LoadDiffusersFolder(fullPath, target, log);
        }, cancellation);
        var model = lease.Engine;
        log?.Invoke(loadedNow
            ? $"Loaded {model.Variant} model ({model.PredictionType}, default {model.DefaultSize}x{model.DefaultSize}, {model.MemoryBytes / (1024.0 * 1024):F1} MiB of weights) in {clock.Elapsed.TotalSeconds:F2} s."
            : $"Using the cached {model.Variant} model '{fullPath}' on {target} (Clear-SDEngine frees it).");
        return lease;
    }
}
