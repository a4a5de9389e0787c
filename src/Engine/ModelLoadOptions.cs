using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>How to get a model in, beyond its path: the options of <c>-Model</c>'s companions on
/// every cmdlet.</summary>
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

    /// <summary>Hub ids: download progress (file, bytes done, bytes total, bytes per second), called on a
    /// worker thread.</summary>
    public Action<string, long, long, double>? DownloadProgress { get; init; }

    /// <summary>Hub ids: called when the hub could not be asked and a cached snapshot was used instead (the reason is
    /// in the message), on a worker thread. Without it the message goes to the log.</summary>
    public Action<string>? Warning { get; init; }

    /// <summary>A string that tells load options apart in the engine cache key.</summary>
    public string CacheKey => $"{ConfigPath}|{PredictionType}|{Revision}|{Variant}";
}
