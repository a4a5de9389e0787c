using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>Callbacks a pipeline call reports through; all run on the calling thread.</summary>
public sealed class PipelineObserver
{
    public static PipelineObserver None { get; } = new();

    /// <summary>After each denoising step.</summary>
    public Action<StepProgress>? Progress { get; init; }

    /// <summary>Verbose log lines: what was loaded, dtype, device, timings.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Warnings the user should see (e.g. a prompt truncated to 77 tokens).</summary>
    public Action<string>? Warn { get; init; }

    /// <summary>
    /// Intermediate tensors under the names of the golden fixtures (<c>prompt_embeds</c>, <c>stepNN_unet_output</c>,
    /// …). Only tests set it; the tensor is owned by the pipeline, so copy it to keep it.
    /// </summary>
    public Action<string, Tensor>? Inspect { get; init; }

    public CancellationToken Cancellation { get; init; }
}
