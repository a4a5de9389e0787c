using System.Collections.Concurrent;
using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Estimates the depth of images with a depth model's MiDaS DPT-Hybrid estimator (or a DPT folder alone) and writes
/// each depth map as an SDImage of 16-bit grayscale levels at the image's size, brighter nearer. Save-SDImage writes it
/// as a 16-bit PNG; New-SDImage -DepthMap reads either back without loss.
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDDepthMap")]
[OutputType(typeof(SDImage))]
public sealed class GetSDDepthMapCommand : SDCmdletBase
{
    #region Members

    private const int ProgressActivityId = 1;
    private ComputeTarget? _target;
    private int _count;

    #endregion

    #region Parameters

    /// <summary>The image: an SDImage, a path or a FileInfo; from the pipeline.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [SDImageTransformation]
    [ValidateNotNull]
    public SDImage? Image { get; set; }

    /// <summary>A depth model (diffusers folder, single file or hub id) with its estimator, or a DPT folder alone.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    /// <summary>Min-max normalise to the full 16-bit range (MiDaS' write_depth); default: the prediction scaled by its peak.</summary>
    [Parameter]
    public SwitchParameter Normalize { get; set; }

    /// <summary>cpu, cuda or cuda:N. Defaults to the first CUDA device when there is one, else the CPU.</summary>
    [Parameter]
    [ValidatePattern(@"^(cpu|cuda(:\d+)?)$")]
    public string? Device { get; set; }

    /// <summary>float32 (default), bfloat16, or float16 (CUDA only).</summary>
    [Parameter]
    public Precision Precision { get; set; } = Precision.Float32;

    /// <summary>Hub ids: the branch, tag or commit to download (default main).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Revision { get; set; }

    /// <summary>Hub ids: an access token for gated repositories (default: HF_TOKEN or the huggingface-cli login).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Token { get; set; }

    /// <summary>CPU threads for libtorch (default: the physical cores, at most the processors this process may use).</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int? Threads { get; set; }

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

    protected override void ProcessRecord()
    {
        var image = Image!;
        SDImage? depth = RunEngine(() =>
        {
            // Leased per image, as the generating cmdlets lease the model per call: a stopped pipeline leaves no lease held.
            using var lease = AcquireEstimatorOrStop();
            WriteProgress(new ProgressRecord(ProgressActivityId, "Estimating depth", $"Image {++_count}: {image.Width}x{image.Height}"));
            try
            {
                return DepthMapEstimation.Estimate(lease.Estimator, image, Normalize, lease.ModelPath, WriteVerbose, WriteWarning);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // A bad image spoils only itself.
                WriteError(ToErrorRecord(e, "DepthEstimationFailed", image));
                return null;
            }
        });
        if (depth is not null) WriteObject(depth);
    }

    protected override void EndProcessing()
    {
        WriteProgress(new ProgressRecord(ProgressActivityId, "Estimating depth", "Done") { RecordType = ProgressRecordType.Completed });
        base.EndProcessing();
    }

    #endregion

    #region Private methods

    /// <summary>The estimator lease; a model that gives none ends the command (it would fail for every image).</summary>
    private DepthEstimatorLease AcquireEstimatorOrStop()
    {
        try
        {
            return AcquireEstimator();
        }
        catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "DepthEstimationFailed", Model));
            throw; // not reached
        }
    }

    /// <summary>
    /// The estimator -Model names, held (leased) until the pipeline ends. A hub download runs on a worker so that its
    /// progress can be written from this thread.
    /// </summary>
    private DepthEstimatorLease AcquireEstimator()
    {
        var threads = TorchThreads.Configure(Threads);
        WriteVerbose($"libtorch runs on {threads} CPU thread(s){(Threads is null ? $" (libtorch's default {TorchThreads.LibTorchDefault}, at most the {Environment.ProcessorCount} processors this process may use; -Threads changes it)" : "")}.");
        var source = ModelStore.Resolve(Model, ResolvePath);
        var options = new ModelLoadOptions { Revision = Revision, Token = Token };
        return AcquireWithDownloadProgress(source, options, (withCallbacks, log) =>
            DepthEstimatorStore.Acquire(source, _target!, withCallbacks, log, Cancellation));
    }

    #endregion
}
