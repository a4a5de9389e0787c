using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Runtime;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// What every cmdlet that loads a model shares (the generating cmdlets and Get-SDDepthMap): where the model comes from
/// (-Model, and for hub ids -Revision and -Token), where it runs (-Device, checked at the start of the pipeline) and on
/// how many CPU threads (-Threads). Precision stays with each cmdlet, whose defaults differ.
/// </summary>
public abstract class ModelCmdletBase : SDCmdletBase
{
    #region Parameters

    /// <summary>A diffusers model folder, a single checkpoint file (.safetensors or .ckpt), or a Hugging
    /// Face hub id.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    /// <summary>cpu, cuda or cuda:N. Defaults to the first CUDA device when there is one, else the CPU.</summary>
    [Parameter]
    [ValidatePattern(@"^(cpu|cuda(:\d+)?)$")]
    public string? Device { get; set; }

    /// <summary>Hub ids: the branch, tag or commit to download (default main).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Revision { get; set; }

    /// <summary>Hub ids: an access token for gated repositories (default: HF_TOKEN or the
    /// huggingface-cli login).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Token { get; set; }

    /// <summary>CPU threads for libtorch (default: the physical cores, at most the processors this
    /// process may use).</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int? Threads { get; set; }

    #endregion

    #region Protected methods

    /// <summary>
    /// -Device with <paramref name="precision"/> as a compute target; a device that does not exist (or a precision it
    /// cannot run) ends the command with InvalidDevice before any work. Auto stands as float32 here: a generating
    /// cmdlet resolves it per call (once threads are set) and replaces it; Get-SDDepthMap keeps float32.
    /// </summary>
    protected ComputeTarget ResolveTargetOrStop(Precision precision)
    {
        try
        {
            return ComputeParameters.Resolve(Device, precision == Precision.Auto ? Precision.Float32 : precision);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            ThrowTerminatingError(new ErrorRecord(
                e, "InvalidDevice", ErrorCategory.InvalidArgument, Device ?? precision.ToString()));
            throw; // not reached
        }
    }

    /// <summary>Sets libtorch's CPU threads from -Threads (or the default) and says in -Verbose how
    /// many and why.</summary>
    protected void ConfigureThreads()
    {
        var threads = TorchThreads.Configure(Threads);
        WriteVerbose(
            $"libtorch runs on {threads} CPU thread(s)" +
            (Threads is null
                ? $" (libtorch's default {TorchThreads.LibTorchDefault}, at most the {Environment.ProcessorCount} " +
                  "processors this process may use; -Threads changes it)"
                : "") + ".");
    }

    #endregion
}
