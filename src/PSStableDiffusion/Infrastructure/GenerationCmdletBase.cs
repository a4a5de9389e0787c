using PSStableDiffusion.Engine.Runtime;
using System.Collections.Concurrent;
using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// What the generating cmdlets (New-SDImage, Invoke-SDInpaint, Resize-SDUpscale) share: the model and compute
/// parameters, and one way to run a request with progress, verbose logging, cancellation and error records.
/// </summary>
public abstract class GenerationCmdletBase : ModelCmdletBase
{
    #region Members

    private const int ProgressActivityId = 1;
    private const int LoraHashActivityId = 4;
    private ComputeTarget? _target;

    #endregion

    #region Parameters

    /// <summary>Auto (default: float16 on CUDA; on the CPU bfloat16 where a one-time measurement shows it faster, else
    /// float32), float32 (images that must match across machines), bfloat16, or float16 (CUDA only).</summary>
    [Parameter]
    public Precision Precision { get; set; } = Precision.Auto;

    /// <summary>Single-file checkpoints: the ldm YAML config to use, instead of the one beside the file or
    /// detection.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Config { get; set; }

    /// <summary>epsilon or v_prediction, overriding what the model's files say (single files carry no
    /// such setting).</summary>
    [Parameter]
    [ValidateSet("epsilon", "v_prediction")]
    public string? PredictionType { get; set; }

    /// <summary>Hub ids and folders: a weights variant such as fp16 (*.fp16.safetensors), as
    /// diffusers' variant.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Variant { get; set; }

    /// <summary>Automatic1111 (default): weights, BREAK and prompts of any length as AUTOMATIC1111 reads them;
    /// None: literal text cut at 77 tokens, as diffusers.</summary>
    [Parameter]
    public Engine.Text.PromptSyntax PromptSyntax { get; set; } = Engine.Text.PromptSyntax.Automatic1111;

    /// <summary>Folders (with their subfolders) or files of textual-inversion embeddings, searched before
    /// $env:SD_EMBEDDINGS; a prompt uses one by its file name.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? EmbeddingPath { get; set; }
    /// <summary>LoRAs for this call: a hashtable of name or path to multiplier (@{ style = 0.8 }), or objects from
    /// Get-SDLora (their Multiplier). They add to the prompt's &lt;lora:name:multiplier&gt; tags.</summary>
    [Parameter]
    [ValidateNotNull]
    public object[]? Lora { get; set; }

    /// <summary>Folders where LoRA names (in -Lora and in the prompt's &lt;lora:…&gt; tags) are looked up, before
    /// those of $env:SD_LORA.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? LoraPath { get; set; }

    #endregion

    #region Overrides

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        // The device (and an explicit precision) is checked now; Auto is resolved per call, once threads are set.
        _target = ResolveTargetOrStop(Precision);
    }

    #endregion

    #region Protected methods

    /// <summary>
    /// Checks <paramref name="request"/> against the engine's rules before any model loads, and stops with an
    /// ErrorRecord whose id names the kind of bad value (InvalidImageSize, InvalidStrength, UnknownScheduler, ...).
    /// </summary>
    protected void CheckRequest(GenerationRequest request)
    {
        try
        {
            RequestRules.Check(request);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ToErrorRecord(e, "InvalidArgument", BadValue(e, request)));
        }
        // Before any model loads: a mistyped -EmbeddingPath should not cost a model load to find out.
        foreach (var path in request.EmbeddingPaths ?? [])
            if (!File.Exists(path) && !Directory.Exists(path))
                ThrowTerminatingError(ToErrorRecord(
                    new Engine.Networks.NetworkPathNotFoundException(path, nameof(EmbeddingPath)),
                    "EmbeddingPathNotFound", path));
        if (request.EmbeddingPaths is { Count: > 0 } && request.PromptSyntax == Engine.Text.PromptSyntax.None)
            WriteWarning(
                "-EmbeddingPath has no effect with -PromptSyntax None: " +
                "the literal reading does not replace embedding names.");
    }

    /// <summary>The value an engine rule refused, as the ErrorRecord's target: the scheduler name, the out-of-range
    /// value, or the request property the exception names; the request itself when it names none.</summary>
    private static object BadValue(ArgumentException error, GenerationRequest request) => error switch
    {
        UnknownSchedulerException unknown => unknown.SchedulerName,
        ArgumentOutOfRangeException { ActualValue: { } value } => value,
        { ParamName: { } name } => typeof(GenerationRequest).GetProperty(name)?.GetValue(request)
            ?? request.Input.GetType().GetProperty(name)?.GetValue(request.Input) ?? request,
        _ => request,
    };

    /// <summary>-EmbeddingPath as file-system paths (null when not given).</summary>
    protected IReadOnlyList<string>? EmbeddingPaths => EmbeddingPath?.Select(ResolvePath).ToArray();

    /// <summary>-PromptSyntax when given, else a replayed record's (a replay reads its prompts as they
    /// were read).</summary>
    protected Engine.Text.PromptSyntax PromptSyntaxFor(GenerationRecord? record) =>
        !MyInvocation.BoundParameters.ContainsKey(nameof(PromptSyntax)) &&
        Enum.TryParse<Engine.Text.PromptSyntax>(record?.PromptSyntax, ignoreCase: true, out var recorded)
            ? recorded
            : PromptSyntax;

    /// <summary>A replayed image's record (New-SDImage's piped -Record): its precision is used unless
    /// -Precision is given.</summary>
    protected virtual GenerationRecord? ReplayedRecord => null;
    /// <summary>A replay's LoRAs that were parameters (not prompt tags), used when -Lora is not given.</summary>
    protected IReadOnlyList<Engine.Lora.LoraUse>? ReplayedLoras { get; set; }

    /// <summary>
    /// The request with its LoRAs: the prompt's &lt;lora:…&gt; tags and -Lora, each name looked up in -LoraPath and
    /// $env:SD_LORA (a replay's parameter LoRAs by their recorded file, else by name; each with its recorded hash,
    /// which the engine checks). Stops with LoraPathNotFound, LoraNotFound or InvalidLora naming the value.
    /// </summary>
    private GenerationRequest WithLoras(GenerationRequest request)
    {
        var loraPaths = LoraPath?.Select(ResolvePath).ToArray();
        // Before any model loads or folder is searched: a mistyped -LoraPath is an error even when no name needs it.
        foreach (var path in loraPaths ?? [])
            if (!File.Exists(path) && !Directory.Exists(path))
                ThrowTerminatingError(ToErrorRecord(
                    new Engine.Networks.NetworkPathNotFoundException(path, nameof(LoraPath)), "LoraPathNotFound",
                    path));
        var files = new Lazy<Engine.Networks.NetworkFileLookup>(() => OpenLoraFiles(loraPaths));
        var loras = new List<Engine.Lora.LoraRequest>();
        IReadOnlyList<Engine.Lora.LoraTag> tags;
        try
        {
            tags = Engine.Lora.LoraPromptTags.Extract(request.Prompt).Tags;
        }
        catch (Engine.Text.PromptSyntaxException e)
        {
            ThrowTerminatingError(ToErrorRecord(e, "InvalidPromptSyntax", request.Prompt));
            throw;
        }
        foreach (var tag in tags)
        {
            var recordedHash = RecordedLoraHash(tag.Name, fromPrompt: true);
            loras.Add(new Engine.Lora.LoraRequest(
                FindLora(tag.Name, files, recordedHash), tag.TextEncoderMultiplier, tag.UnetMultiplier)
                { Name = tag.Name, FromPrompt = true, RecordedHash = recordedHash });
        }
        if (Lora is not null)
        {
            foreach (var item in Lora) loras.AddRange(LorasOf(item, files));
        }
        else if (ReplayedLoras is not null)
        {
            foreach (var use in ReplayedLoras.Where(u => !u.FromPrompt))
                loras.Add(new Engine.Lora.LoraRequest(
                    FindLora(use.Name, files, use.Hash, use.Path), use.TextEncoderMultiplier, use.UnetMultiplier)
                    { Name = use.Name, RecordedHash = use.Hash });
        }
        return loras.Count == 0 ? request : request with { Loras = loras };
    }

    /// <summary>The LoRA files of -LoraPath and $env:SD_LORA (searched only when a name must be found).</summary>
    private Engine.Networks.NetworkFileLookup OpenLoraFiles(IReadOnlyList<string>? loraPaths)
    {
        Engine.Networks.NetworkFileLookup files;
        try
        {
            files = Engine.Lora.LoraFile.FindFiles(loraPaths);
        }
        catch (Engine.Networks.NetworkPathNotFoundException e)
        {
            ThrowTerminatingError(ToErrorRecord(e, "LoraPathNotFound", e.FileName));
            throw;
        }
        foreach (var missing in files.MissingFromVariable)
            WriteWarning(
                $"{Engine.Lora.LoraFile.EnvironmentVariable} names '{missing}', which does not exist; it was skipped.");
        foreach (var shadowed in files.Shadowed)
            WriteVerbose($"LoRA '{shadowed.Name}': '{shadowed.Path}' is hidden by an earlier file of the same name.");
        return files;
    }

    /// <summary>The hash a replayed record gives the LoRA <paramref name="name"/> (a prompt tag's or a
    /// parameter's).</summary>
    private string? RecordedLoraHash(string name, bool fromPrompt) =>
        ReplayedLoras?.FirstOrDefault(u =>
            u.FromPrompt == fromPrompt && string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase))?.Hash;

    /// <summary>One -Lora item: a hashtable (name or path → multiplier), a Get-SDLora object, or a name or path
    /// alone (1).</summary>
    private IEnumerable<Engine.Lora.LoraRequest> LorasOf(object item, Lazy<Engine.Networks.NetworkFileLookup> files)
    {
        switch (item is PSObject wrapped ? wrapped.BaseObject : item)
        {
            case Engine.Lora.LoraInfo info:
                yield return new Engine.Lora.LoraRequest(
                    info.Path, info.Multiplier, info.Multiplier) { Name = info.Name };
                break;
            case System.Collections.IDictionary table:
                foreach (System.Collections.DictionaryEntry entry in table)
                {
                    var key = entry.Key?.ToString() ?? "";
                    var value = entry.Value is PSObject v ? v.BaseObject : entry.Value;
                    if (!LanguagePrimitives.TryConvertTo<double>(
                            value, System.Globalization.CultureInfo.InvariantCulture, out var multiplier)
                        || !double.IsFinite(multiplier))
                        ThrowTerminatingError(new ErrorRecord(
                            new ArgumentException(
                                $"-Lora gives '{key}' the multiplier '{entry.Value}', which is not a number."),
                            "InvalidLoraMultiplier", ErrorCategory.InvalidArgument, entry.Value));
                    var path = FindLora(key, files);
                    yield return new Engine.Lora.LoraRequest(path, multiplier, multiplier)
                    {
                        Name = Path.GetFileNameWithoutExtension(path)
                    };
                }
                break;
            case string text:
                var found = FindLora(text, files);
                yield return new Engine.Lora.LoraRequest(found, 1.0, 1.0)
                {
                    Name = Path.GetFileNameWithoutExtension(found)
                };
                break;
            default:
                ThrowTerminatingError(new ErrorRecord(
                    new ArgumentException(
                        $"-Lora takes hashtables (@{{ name = 0.8 }}), " +
                        $"Get-SDLora objects or names, not {item.GetType().Name}."),
                    "InvalidLora", ErrorCategory.InvalidArgument, item));
                break;
        }
    }

    /// <summary>A LoRA file by path (an existing file) or by name in <paramref name="files"/>; for a replay with
    /// the record's hash and file, by hash where the name does not give a file with that hash
    /// (<see cref="Engine.Lora.LoraFinder"/>). LoraNotFound otherwise, naming the name and the hash.</summary>
    private string FindLora(string nameOrPath, Lazy<Engine.Networks.NetworkFileLookup> files,
        string? recordedHash = null, string? recordedPath = null)
    {
        bool looksLikePath = nameOrPath.IndexOfAny(['/', '\\']) >= 0
            || Engine.Lora.LoraFile.Extensions.Any(e => nameOrPath.EndsWith(e, StringComparison.OrdinalIgnoreCase));
        var name = nameOrPath;
        if (looksLikePath)
        {
            var path = ResolvePath(nameOrPath);
            // A path names one file: only a replay's recorded hash may lead elsewhere.
            if (string.IsNullOrEmpty(recordedHash))
                return File.Exists(path) ? path : StopLoraNotFound(
                    new Engine.Lora.LoraNotFoundException(nameOrPath, files.Value.Searched), nameOrPath);
            (recordedPath, name) = (path, Path.GetFileNameWithoutExtension(path));
            if (name.Length == 0) name = nameOrPath;
        }
        var finder = new Engine.Lora.LoraFinder(() => files.Value);
        var progress = new ProgressRecord(LoraHashActivityId, $"Looking for the LoRA with hash {recordedHash}", " ");
        try
        {
            return RunEngine(() => finder.Find(name, recordedHash, recordedPath, WriteVerbose, (done, total) =>
            {
                progress.StatusDescription = $"File {done + 1} of {total}";
                progress.PercentComplete = total == 0 ? 100 : (int)(100.0 * done / total);
                WriteProgress(progress);
            }, Cancellation)).Path;
        }
        catch (Engine.Lora.LoraNotFoundException e)
        {
            return StopLoraNotFound(e, nameOrPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The named or recorded file could not be read to compare its hash.
            ThrowTerminatingError(ToErrorRecord(e, "IOError", nameOrPath));
            throw;
        }
        finally
        {
            if (progress.PercentComplete >= 0)
            {
                progress.RecordType = ProgressRecordType.Completed;
                WriteProgress(progress);
            }
        }
    }

    private string StopLoraNotFound(Engine.Lora.LoraNotFoundException error, string nameOrPath)
    {
        ThrowTerminatingError(ToErrorRecord(error, "LoraNotFound", nameOrPath));
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>A random seed when none was given: 32 bits, as AUTOMATIC1111 draws them, so it is easy to
    /// type back.</summary>
    protected static long ResolveSeed(long? seed) => seed ?? Random.Shared.NextInt64(0, 1L << 32);

    /// <summary>
    /// Runs <paramref name="request"/> on the cached model, with Write-Progress per step, -Verbose logging and Ctrl+C,
    /// and writes the images. Any failure ends the command with an ErrorRecord naming the bad value.
    /// </summary>
    /// <param name="onlyIndex">Write only the image with this batch index (a replay of one image of a batch).</param>
    protected void GenerateAndWrite(GenerationRequest request, string activity, int? onlyIndex = null)
    {
        request = WithLoras(request);
        var observer = new PipelineObserver
        {
            Cancellation = Cancellation,
            Log = WriteVerbose,
            Warn = WriteWarning,
            Progress = step => WriteStepProgress(ProgressActivityId, activity, step),
        };
        IReadOnlyList<SDImage> images;
        PrecisionChoice? precision = null;
        try
        {
            images = RunEngine(() =>
            {
                ConfigureThreads();
                precision = ChoosePrecision();
                using var lease = AcquireModel();
                WriteVerbose(
                    $"{StableDiffusionPipeline.KindOf(lease.Engine, request)}: {request.Count} image(s), " +
                    $"seed {request.Seed}, {request.Steps} steps, guidance {request.GuidanceScale}.");
                return ImageGeneration.Generate(lease.Engine, request, observer);
            });
        }
        catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "GenerationFailed", e switch
            {
                ArgumentException argument => BadValue(argument, request),
                Engine.Text.Embeddings.EmbeddingFormatException format => format.FilePath,
                Engine.Text.Embeddings.EmbeddingWidthException width => width.FilePath,
                Engine.Text.Embeddings.EmbeddingNotFoundException missing => missing.Name,
                Engine.Networks.NetworkPathNotFoundException path => path.FileName,
                PipelineMismatchException => request,
                _ => Model,
            }));
            return;
        }
        foreach (var image in images)
        {
            if (onlyIndex is { } only && image.ImageIndex != only) continue;
            var timings = string.Join(", ", image.Record.Timings.Select(t => $"{t.Key} {t.Value:F2} s"));
            WriteVerbose($"Image {image.ImageIndex + 1}/{images.Count}: {timings}.");
            image.Record.PrecisionReason = precision?.Reason;
            WriteObject(image);
        }
    }

    /// <summary>
    /// A lease on the model -Model names (folder, single file or hub id, resolved by the engine's rules). A hub
    /// download runs on a worker so that its progress can be written from this, the pipeline thread.
    /// </summary>
    private EngineLease<StableDiffusionModel> AcquireModel()
    {
        var source = ModelStore.Resolve(Model, ResolvePath);
        var options = new ModelLoadOptions
        {
            ConfigPath = Config is null ? null : ResolvePath(Config),
            PredictionType = PredictionType,
            Revision = Revision,
            Variant = Variant,
            Token = Token,
        };
        return AcquireWithDownloadProgress(source, options, (withCallbacks, log) =>
            ModelStore.Acquire(source, _target!, withCallbacks, log, Cancellation));
    }

    /// <summary>Resolves -Precision (Auto, a replay's recorded dtype, or as given) into the target,
    /// saying why.</summary>
    private PrecisionChoice ChoosePrecision()
    {
        var target = _target!;
        var explicitPrecision = MyInvocation.BoundParameters.ContainsKey(nameof(Precision));
        var choice = (explicitPrecision ? null : PrecisionPolicy.FromRecord(ReplayedRecord?.DType, target.IsCuda))
            ?? PrecisionPolicy.Choose(Precision, target.IsCuda, PrecisionSpeedCache.ForThisMachine);
        _target = target with { Precision = choice.Precision };
        WriteVerbose($"Precision {choice.Reason}");
        if (choice.Warning is { } warning) WriteWarning(warning);
        return choice;
    }

    protected static string Truncate(string text, int length) =>
        text.Length <= length ? text : text[..(length - 1)] + "…";

    #endregion
}
