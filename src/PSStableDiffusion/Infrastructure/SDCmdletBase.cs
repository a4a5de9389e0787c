using System.Management.Automation;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// What every cmdlet of the module shares: a cancellation source that Ctrl+C (StopProcessing) trips, and the mapping
/// of engine exceptions to ErrorRecords with stable ids and categories.
/// </summary>
public abstract class SDCmdletBase : PSCmdlet, IDisposable
{
    private CancellationTokenSource? _cancellation;

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken Cancellation => _cancellation?.Token ?? CancellationToken.None;

    protected override void BeginProcessing()
    {
        _cancellation = new CancellationTokenSource();
        try
        {
            // Before anything loads libtorch: on Windows without the VC++ runtime, say so instead
            // of "module not found".
            Engine.Runtime.VisualCppRuntime.EnsureInstalled();
        }
        catch (Engine.Runtime.NativeRuntimeMissingException e)
        {
            ThrowTerminatingError(new ErrorRecord(
                e, "VisualCppRuntimeMissing", ErrorCategory.NotInstalled, string.Join(", ", e.MissingLibraries)));
        }
        try
        {
            // A module built with build.ps1 -LibTorch loads libtorch from that folder, before TorchSharp looks for it.
            Engine.Runtime.LibTorchFolder.EnsureLoaded();
        }
        catch (Engine.Runtime.LibTorchFolderException e)
        {
            ThrowTerminatingError(LibTorchFolderError(e));
        }
    }

    /// <summary>The ErrorRecord of an unusable libtorch folder: LibTorchCudaNotFound when only CUDA
    /// is missing.</summary>
    internal static ErrorRecord LibTorchFolderError(Engine.Runtime.LibTorchFolderException e)
    {
        var (id, category) = e.Problem switch
        {
            Engine.Runtime.LibTorchProblem.NoCuda => ("LibTorchCudaNotFound", ErrorCategory.NotInstalled),
            Engine.Runtime.LibTorchProblem.LoadFailed => ("LibTorchLoadFailed", ErrorCategory.NotInstalled),
            Engine.Runtime.LibTorchProblem.AlreadyLoaded =>
                ("LibTorchAlreadyLoaded", ErrorCategory.ResourceUnavailable),
            Engine.Runtime.LibTorchProblem.Unreadable => ("LibTorchSettingsInvalid", ErrorCategory.InvalidData),
            _ => ("LibTorchNotFound", ErrorCategory.ObjectNotFound),
        };
        return new ErrorRecord(e, id, category, e.Folder)
        {
            ErrorDetails = new ErrorDetails(e.Message)
            {
                RecommendedAction = $"Rebuild the module with './build.ps1 -Backend cuda -LibTorch " +
                    $"<folder>', or set ${Engine.Runtime.LibTorchFolder.FolderVariable} to the libtorch folder.",
            },
        };
    }

    protected override void StopProcessing()
    {
        _cancellation?.Cancel();
    }

    public void Dispose()
    {
        _cancellation?.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Resolves a user path (relative, ~, PSDrive) to a file-system path without requiring
    /// it to exist.</summary>
    protected string ResolvePath(string path) => GetUnresolvedProviderPathFromPSPath(path);

    /// <summary>
    /// Turns an engine exception into an ErrorRecord: a stable id per kind of failure, a category, and the bad value as
    /// the target. Cancellation becomes PipelineStoppedException so PowerShell ends the pipeline quietly.
    /// </summary>
    protected ErrorRecord ToErrorRecord(Exception exception, string fallbackId, object? target)
    {
        var (id, category) = exception switch
        {
            _ when Engine.Runtime.TorchErrors.IsOutOfMemory(exception) =>
                ("InsufficientMemory", ErrorCategory.ResourceUnavailable),
            UnknownSchedulerException => ("UnknownScheduler", ErrorCategory.InvalidArgument),
            Engine.Lora.LoraNotFoundException => ("LoraNotFound", ErrorCategory.ObjectNotFound),
            Engine.Lora.UnknownLoraKeyException => ("UnknownLoraKey", ErrorCategory.InvalidData),
            Engine.Lora.LoraModelMismatchException => ("LoraModelMismatch", ErrorCategory.InvalidData),
            Engine.Lora.LoraFormatException => ("InvalidLora", ErrorCategory.InvalidData),
            Engine.Text.PromptSyntaxException => ("InvalidPromptSyntax", ErrorCategory.InvalidArgument),
            Engine.Text.PromptTooLongException => ("PromptTooLong", ErrorCategory.InvalidArgument),
            Engine.Pipelines.NonFiniteOutputException => ("NonFiniteOutput", ErrorCategory.InvalidResult),
            Engine.Runtime.NotEnoughMemoryException => ("InsufficientMemory", ErrorCategory.ResourceUnavailable),
            Engine.Hub.HubModelWithdrawnException => ("ModelWithdrawn", ErrorCategory.ObjectNotFound),
            Engine.Hub.HubDiskFullException => ("DiskFull", ErrorCategory.WriteError),
            Engine.Hub.HubTimeoutException => ("HubTimeout", ErrorCategory.OperationTimeout),
            Engine.Hub.HubNotFoundException => ("ModelNotFound", ErrorCategory.ObjectNotFound),
            Engine.Hub.HubAuthenticationException or Engine.Hub.HubAccessDeniedException =>
                ("HubAccessDenied", ErrorCategory.PermissionDenied),
            Engine.Hub.HubOfflineException => ("HubUnavailable", ErrorCategory.ConnectionError),
            Engine.Hub.HubException => ("HubDownloadFailed", ErrorCategory.ConnectionError),
            Engine.Networks.NetworkPathNotFoundException notFound =>
                (notFound.ParameterName + "NotFound", ErrorCategory.ObjectNotFound),
            Engine.Text.Embeddings.EmbeddingNotFoundException => ("EmbeddingNotFound", ErrorCategory.ObjectNotFound),
            Engine.Text.Embeddings.EmbeddingWidthException => ("EmbeddingWidthMismatch", ErrorCategory.InvalidData),
            Engine.Text.Embeddings.EmbeddingFormatException => ("InvalidEmbedding", ErrorCategory.InvalidData),
            Engine.Checkpoints.UnsafeCheckpointException => ("UnsafeCheckpoint", ErrorCategory.SecurityError),
            Engine.Checkpoints.CheckpointFormatException => ("InvalidCheckpoint", ErrorCategory.InvalidData),
            Engine.SingleFile.SingleFileCheckpointException => ("InvalidCheckpoint", ErrorCategory.InvalidData),
            DirectoryNotFoundException => ("ModelNotFound", ErrorCategory.ObjectNotFound),
            FileNotFoundException => ("FileNotFound", ErrorCategory.ObjectNotFound),
            SafeTensorsFormatException => ("InvalidSafeTensors", ErrorCategory.InvalidData),
            ModelLoadException => ("ModelLoadFailed", ErrorCategory.InvalidData),
            ImageFormatException => ("InvalidImage", ErrorCategory.InvalidData),
            InvalidSDImageDataException => ("InvalidDeserializedImage", ErrorCategory.InvalidData),
            InvalidDataException => ("InvalidModel", ErrorCategory.InvalidData),
            ArgumentException => ("InvalidArgument", ErrorCategory.InvalidArgument),
            NotSupportedException => ("NotSupported", ErrorCategory.NotImplemented),
            InvalidOperationException => ("ModelMismatch", ErrorCategory.InvalidOperation),
            UnauthorizedAccessException => ("AccessDenied", ErrorCategory.PermissionDenied),
            IOException => ("IOError", ErrorCategory.WriteError),
            _ => (fallbackId, ErrorCategory.NotSpecified),
        };
        id = exception is ArgumentException { ParamName: { } name } && id == "InvalidArgument"
            ? name switch
            {
                "Width" or "Height" => "InvalidImageSize",
                "Strength" => "InvalidStrength",
                "NoiseLevel" => "InvalidNoiseLevel",
                _ => id,
            }
            : id;
        var record = new ErrorRecord(exception, id, category, target);
        if (PowerShellWording(exception) is { } worded) record.ErrorDetails = new ErrorDetails(worded);
        if (exception is Engine.Hub.HubAuthenticationException)
            record.ErrorDetails = new ErrorDetails(exception.Message) { RecommendedAction = "Set " +
                "$env:HF_TOKEN or pass -Token." };
        if (exception is not Engine.Runtime.NotEnoughMemoryException
            && Engine.Runtime.TorchErrors.IsOutOfMemory(exception))
            record.ErrorDetails = new ErrorDetails(Engine.Runtime.TorchErrors.Summary(exception))
            {
                // libtorch ran out during the call (on a GPU the check before it cannot see everything); the cached
                // model is unharmed, and the call's memory went back to libtorch.
                RecommendedAction = OutOfMemoryAdvice(),
            };
        if (exception is Engine.Runtime.NotEnoughMemoryException memory)
            record.ErrorDetails = new ErrorDetails(
                exception.Message[..(exception.Message.IndexOf(" What would fit", StringComparison.Ordinal) + 1)]
                    .TrimEnd())
            {
                RecommendedAction = MemoryAdvice(memory),
            };
        if (exception is Engine.Hub.HubModelWithdrawnException withdrawn)
            record.ErrorDetails = new ErrorDetails(exception.Message)
            {
                RecommendedAction = withdrawn.Mirror is { } mirror
                    ? $"Use -Model {mirror} (a community copy, not Stability " +
                        $"AI's; -Verbose says whether its weights match the release)."
                    : "Pass a local copy to -Model: a diffusers folder or the original checkpoint file.",
            };
        return record;
    }

    /// <summary>After libtorch ran out of memory: what asks for less, among this cmdlet's parameters.</summary>
    private string OutOfMemoryAdvice()
    {
        var parameters = MyInvocation.MyCommand.Parameters;
        var less = new List<string>();
        if (parameters.ContainsKey("TiledDecode")) less.Add("-TiledDecode");
        if (parameters.ContainsKey("Width")) less.Add("a smaller -Width and -Height");
        if (parameters.ContainsKey("Count")) less.Add("a smaller -Count");
        less.Add("Clear-SDEngine to free other cached models");
        return $"Ask for less at once: {string.Join(", or ", less)}. The loaded model stays usable.";
    }

    /// <summary>What would fit, in this module's terms (the engine names request properties).</summary>
    private static string MemoryAdvice(Engine.Runtime.NotEnoughMemoryException memory)
    {
        var fits = new List<string>();
        if (memory.TiledDecodeFits) fits.Add("-TiledDecode");
        if (memory.FittingSize is { } size) fits.Add($"-Width {size.Width} -Height {size.Height} or smaller");
        fits.Add("Clear-SDEngine to free other cached models");
        return $"What would fit: {string.Join(", or ", fits)}. Set " +
            $"$env:{Engine.Runtime.NotEnoughMemoryException.SwitchVariable} = 'off' to run anyway.";
    }

    /// <summary>
    /// The engine names the request property at fault first ("Eta does not apply to ..."); where that is a parameter of
    /// this cmdlet, the user reads it as one ("-Eta does not apply to ..."). Null when there is nothing to reword.
    /// </summary>
    private string? PowerShellWording(Exception exception)
    {
        if (exception is not ArgumentException { ParamName: { } name } argument) return null;
        if (!MyInvocation.MyCommand.Parameters.ContainsKey(name)) return null;
        var message = argument.Message;
        int suffix = message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal);
        if (suffix >= 0) message = message[..suffix];
        return message.StartsWith(name + " ", StringComparison.Ordinal) ? "-" + message : null;
    }

    /// <summary>Progress activity id of a model download.</summary>
    protected const int DownloadActivityId = 2;

    /// <summary>
    /// Acquires what <paramref name="source"/> names through <paramref name="acquire"/>, given
    /// <paramref name="options"/> with download-progress and warning callbacks. A hub download runs on a worker so that
    /// its progress, verbose lines and warnings can be written from this, the pipeline thread.
    /// </summary>
    protected T AcquireWithDownloadProgress<T>(Engine.ModelSource source, Engine.ModelLoadOptions options,
        Func<Engine.ModelLoadOptions, Action<string>, T> acquire)
    {
        var downloads = new System.Collections.Concurrent.ConcurrentQueue<ProgressRecord>();
        var warnings = new System.Collections.Concurrent.ConcurrentQueue<string>();
        options = options with
        {
            Warning = warnings.Enqueue,
            DownloadProgress = (file, done, total, speed) => downloads.Enqueue(new ProgressRecord(DownloadActivityId,
                $"Downloading {source.Value}",
                $"{file}: {done / 1048576.0:F1} of {total / 1048576.0:F1} MiB at {speed / 1048576.0:F1} MiB/s")
            {
                PercentComplete = total > 0 ? (int)(100 * done / total) : -1,
                SecondsRemaining = speed > 0 && total > done ? (int)((total - done) / speed) : -1,
            }),
        };
        if (source.Kind != Engine.ModelSourceKind.HubRepository) return acquire(options, WriteVerbose);

        var verbose = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var acquiring = Task.Run(() => acquire(options, verbose.Enqueue));
        try
        {
            // WaitAny, unlike Task.Wait, does not throw when the download fails or is cancelled.
            while (Task.WaitAny(new Task[] { acquiring }, 200) < 0)
            {
                while (downloads.TryDequeue(out var record)) WriteProgress(record);
                while (verbose.TryDequeue(out var line)) WriteVerbose(line);
            }
            while (verbose.TryDequeue(out var line)) WriteVerbose(line);
            while (warnings.TryDequeue(out var warning)) WriteWarning(warning);
            WriteProgress(new ProgressRecord(DownloadActivityId, $"Downloading {source.Value}", "Done")
            {
                RecordType = ProgressRecordType.Completed
            });
        }
        catch
        {
            // Any write throws PipelineStoppedException once the pipeline is stopping, and the worker may still be
            // loading: what it acquires is this call's, so it is given back when it arrives (an engine lease held by
            // nobody would shut out every later call on that model).
            acquiring.ContinueWith(done => (done.Result as IDisposable)?.Dispose(), CancellationToken.None,
                TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            throw;
        }
        // The engine's own exception (HubNotFoundException, OperationCanceledException...), not an AggregateException,
        // so ToErrorRecord gives it its id and Ctrl+C stops quietly.
        return acquiring.GetAwaiter().GetResult();
    }

    /// <summary>Runs engine work, turning cancellation into a stopped pipeline.</summary>
    protected T RunEngine<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (OperationCanceledException) when (Cancellation.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>Writes Write-Progress for a denoising step, with an estimate of the time left.</summary>
    protected void WriteStepProgress(int activityId, string activity, StepProgress step)
    {
        var record = new ProgressRecord(activityId, activity, $"Step {step.Step} of {step.TotalSteps}")
        {
            PercentComplete = (int)(100.0 * step.Step / step.TotalSteps),
            SecondsRemaining = step.Remaining is { } left ? (int)Math.Ceiling(left.TotalSeconds) : -1,
        };
        if (step.Step == step.TotalSteps) record.RecordType = ProgressRecordType.Completed;
        WriteProgress(record);
    }
}
