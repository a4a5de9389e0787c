using System.Text.Json.Nodes;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Runtime;

namespace PSStableDiffusion.DeviceCheck;

/// <summary>
/// The engine's memory estimate against what a GPU really used, stage by stage. libtorch's caching allocator keeps
/// every block it ever reserved (TorchSharp 0.107 can neither empty nor query it), so the driver's used memory above
/// the resident weights, read after a stage, is the largest peak of the stages so far. The matching estimate is the
/// largest estimate so far: their ratio (summarize.py) tells whether the memory check (<see cref="MemoryEstimator"/>,
/// calibrated on a CPU) holds on the GPU, where cuDNN's workspaces and the allocator's rounding add to the activations.
/// </summary>
internal sealed class AllocatorAccount
{
    private readonly ComputeTarget _target;
    private readonly long? _baseline;
    private long _largestEstimate;

    /// <summary>Reads the driver once, with the weights resident and nothing run yet.</summary>
    public AllocatorAccount(ComputeTarget target)
    {
        _target = target;
        _baseline = Used();
    }

    /// <summary>Adds to <paramref name="stage"/> the estimate and, on CUDA, the allocator's holding above the weights;
    /// returns the stage.</summary>
    public JsonObject After(JsonObject stage, long estimateBytes)
    {
        _largestEstimate = Math.Max(_largestEstimate, estimateBytes);
        stage["estimate_bytes"] = estimateBytes;
        if (Used() is long used && _baseline is long baseline)
        {
            stage["allocator_above_weights_bytes"] = used - baseline;
            stage["largest_estimate_so_far_bytes"] = _largestEstimate;
        }
        return stage;
    }

    /// <summary>The baseline, or why there is none (a CPU run, an unknown reading).</summary>
    public JsonObject Summary() => new()
    {
        ["source"] = "NVIDIA driver (cuMemGetInfo), used = total - free",
        ["weights_resident_used_bytes"] = _baseline,
        ["note"] = _baseline is null ? "no GPU reading on this device" : null,
    };

    private long? Used()
    {
        if (_target.CudaOrdinal is not int ordinal) return null;
        TorchSharp.torch.cuda.synchronize(_target.Device);
        var reading = CudaDriverMemory.Shared.Read(ordinal);
        return reading.IsKnown ? reading.TotalBytes!.Value - reading.FreeBytes!.Value : null;
    }
}
