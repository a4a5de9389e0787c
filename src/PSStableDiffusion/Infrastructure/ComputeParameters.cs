using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Runtime;

namespace PSStableDiffusion.Infrastructure;

/// <summary>The -Device / -Precision defaults every generating cmdlet shares.</summary>
internal static class ComputeParameters
{
    /// <summary>No -Device: <see cref="ComputeDevices.DefaultDevice"/>.</summary>
    public static ComputeTarget Resolve(string? device, Precision precision) =>
        ComputeTarget.Parse(string.IsNullOrWhiteSpace(device) ? ComputeDevices.DefaultDevice : device, precision);
}
