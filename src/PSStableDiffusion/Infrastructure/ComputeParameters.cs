using PSStableDiffusion.Engine;
using TorchSharp;

namespace PSStableDiffusion.Infrastructure;

/// <summary>The -Device / -Precision defaults every generating cmdlet shares.</summary>
internal static class ComputeParameters
{
    /// <summary>No -Device: the first CUDA device when this build and machine have one, else the CPU.</summary>
    public static string DefaultDevice => torch.cuda.is_available() ? "cuda:0" : "cpu";

    public static ComputeTarget Resolve(string? device, Precision precision) =>
        ComputeTarget.Parse(string.IsNullOrWhiteSpace(device) ? DefaultDevice : device, precision);
}
