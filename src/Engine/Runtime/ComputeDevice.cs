using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>One device the engine can compute on.</summary>
/// <param name="Device">The name -Device takes: <c>cpu</c> or <c>cuda:N</c>.</param>
/// <param name="Index">The CUDA ordinal; null for the CPU.</param>
/// <param name="Cpu">The processor, for the CPU; null for a GPU (TorchSharp has no device-name query).</param>
public sealed record ComputeDevice(string Device, int? Index, CpuDescription? Cpu)
{
    public bool IsCuda => Index is not null;
}
