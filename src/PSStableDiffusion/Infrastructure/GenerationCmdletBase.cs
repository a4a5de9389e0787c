using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// What the generating cmdlets (New-SDImage, Invoke-SDInpaint, Resize-SDUpscale) share: the model and compute
/// parameters, and one way to run a request with progress, verbose logging, cancellation and error records.
/// </summary>
public abstract class GenerationCmdletBase : SDCmdletBase
{
    #region Members

    private const int ProgressActivityId = 1;
    private ComputeTarget? _target;

    #endregion

    #region Parameters

    /// <summary>A diffusers model folder, a single checkpoint file (.safetensors or .ckpt), or a Hugging Face hub id.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    /// <summary>cpu, cuda or cuda:N. Defaults to the first CUDA device when there is one, else the CPU.</summary>
    [Parameter]
    [ValidatePattern(@"^(cpu|cuda(:\d+)?)$")]
    public string? Device { get; set; }

    /// <summary>float32 (default), bfloat16, or float16 (CUDA only).</summary>
    [Parameter]
    public Precision Precision { get; set; } = Precision.Float32;

    #endregion

    #region Overrides

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        try
        {
            _target = ComputeParameters.Resolve(Device, Precision);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            ThrowTerminatingError(new ErrorRecord(e, "InvalidDevice", ErrorCategory.InvalidArgument, Device ?? Precision.ToString()));
        }
    }

    #endregion

    #region Protected methods

    /// <summary>Stops with UnknownScheduler when <paramref name="scheduler"/> names nothing; before any model loads.</summary>
    protected void ValidateScheduler(string? scheduler)
    {
        if (scheduler is not null && !SchedulerRegistry.TryResolve(scheduler, out _))
            ThrowTerminatingError(ToErrorRecord(new UnknownSchedulerException(scheduler, SchedulerRegistry.AllNames), "UnknownScheduler", scheduler));
    }

    /// <summary>A random seed when none was given: 32 bits, as AUTOMATIC1111 draws them, so it is easy to type back.</summary>
    protected static long ResolveSeed(long? seed) => seed ?? Random.Shared.NextInt64(0, 1L << 32);

    /// <summary>
    /// Runs <paramref name="request"/> on the cached model, with Write-Progress per step, -Verbose logging and Ctrl+C,
    /// and writes the images. Any failure ends the command with an ErrorRecord naming the bad value.
    /// </summary>
    /// <param name="onlyIndex">Write only the image with this batch index (a replay of one image of a batch).</param>
    protected void GenerateAndWrite(GenerationRequest request, PipelineKind kind, string activity, int? onlyIndex = null)
    {
        var observer = new PipelineObserver
        {
            Cancellation = Cancellation,
            Log = WriteVerbose,
            Warn = WriteWarning,
            Progress = step => WriteStepProgress(ProgressActivityId, activity, step),
        };
        IReadOnlyList<SDImage> images;
        try
        {
            images = RunEngine(() =>
            {
                using var lease = ModelStore.Acquire(ResolveModel(Model), _target!, WriteVerbose, Cancellation);
                SchedulerRegistry.ValidateOptions(request.Scheduler ?? lease.Engine.SchedulerConfig.ClassName ?? "DDIM", request.Eta, request.KarrasSigmas);
                WriteVerbose($"{kind}: {request.Count} image(s), seed {request.Seed}, {request.Steps} steps, guidance {request.GuidanceScale}.");
                return ImageGeneration.Generate(lease.Engine, request, kind, observer);
            });
        }
        catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "GenerationFailed", e is ArgumentException or PipelineMismatchException ? request : Model));
            return;
        }
        foreach (var image in images)
        {
            if (onlyIndex is { } only && image.ImageIndex != only) continue;
            var timings = string.Join(", ", image.Record.Timings.Select(t => $"{t.Key} {t.Value:F2} s"));
            WriteVerbose($"Image {image.ImageIndex + 1}/{images.Count}: {timings}.");
            WriteObject(image);
        }
    }

    /// <summary>A PowerShell path becomes a file-system path; anything that is not a path (a hub id) stays as given.</summary>
    protected string ResolveModel(string model)
    {
        var resolved = ResolvePath(model);
        return Directory.Exists(resolved) || File.Exists(resolved) ? resolved : LooksLikeHubId(model) ? model : resolved;
    }

    protected static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    #endregion

    #region Private methods

    private static bool LooksLikeHubId(string model) =>
        System.Text.RegularExpressions.Regex.IsMatch(model, @"^[A-Za-z0-9][\w.-]*/[\w.-]+$") && !model.StartsWith('.');

    #endregion
}
