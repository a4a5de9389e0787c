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
public sealed class GetSDDepthMapCommand : ModelCmdletBase
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

    /// <summary>Min-max normalise to the full 16-bit range (MiDaS' write_depth); default: the prediction scaled
    /// by its peak.</summary>
    [Parameter]
    public SwitchParameter Normalize { get; set; }

    /// <summary>float32 (default; Auto means float32 here), bfloat16, or float16 (CUDA only).</summary>
    [Parameter]
    public Precision Precision { get; set; } = Precision.Float32;

    #endregion

    #region Overrides

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        // Auto (the generating cmdlets' default, often set for every cmdlet in $PSDefaultParameterValues) is float32
        // here: the estimator is small, and Auto's measurement is of the UNet's shapes, not the estimator's.
        _target = ResolveTargetOrStop(Precision);
    }

    protected override void ProcessRecord()
    {
        var image = Image!;
        SDImage? depth = RunEngine(() =>
        {
            // Leased per image, as the generating cmdlets lease the model per call: a stopped pipeline
            // leaves no lease held.
            using var lease = AcquireEstimatorOrStop();
            WriteProgress(new ProgressRecord(
                ProgressActivityId, "Estimating depth", $"Image {++_count}: {image.Width}x{image.Height}"));
            try
            {
                return DepthMapEstimation.Estimate(
                    lease.Estimator, image, Normalize, lease.ModelPath, WriteVerbose, WriteWarning);
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
        WriteProgress(new ProgressRecord(ProgressActivityId, "Estimating depth", "Done")
        {
            RecordType = ProgressRecordType.Completed
        });
        base.EndProcessing();
    }

    #endregion

    #region Private methods

    /// <summary>The estimator lease; a model that gives none ends the command (it would fail for
    /// every image).</summary>
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
        ConfigureThreads();
        var source = ModelStore.Resolve(Model, ResolvePath);
        var options = new ModelLoadOptions { Revision = Revision, Token = Token };
        return AcquireWithDownloadProgress(source, options, (withCallbacks, log) =>
            DepthEstimatorStore.Acquire(source, _target!, withCallbacks, log, Cancellation));
    }

    #endregion
}
