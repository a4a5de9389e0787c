using System.Reflection;
using PSStableDiffusion.Engine.Runtime;

namespace PSStableDiffusion;

/// <summary>Get-SDDevice's view of the engine's <see cref="ComputeDevices"/>, with this module's
/// build backend.</summary>
internal static class DeviceProbe
{
    /// <summary>The CPU first, then every CUDA device libtorch sees (none with the cpu backend).</summary>
    public static IReadOnlyList<SDDeviceInfo> GetDevices(bool includeCpu, bool includeCuda)
    {
        var torchSharpVersion = ComputeDevices.TorchSharpVersion;
        var libTorchFolder = LibTorchFolder.LoadedFolder;
        var libTorchVersion = (libTorchFolder is null ? null : LibTorchFolder.Version(libTorchFolder))
            ?? ComputeDevices.LibTorchVersion;
        var backend = BuildBackend();
        return ComputeDevices.Discover(includeCpu, includeCuda).Select(device => new SDDeviceInfo
        {
            Device = device.Device,
            Type = device.IsCuda ? "cuda" : "cpu",
            Index = device.Index,
            Name = device.Cpu?.Name,
            LogicalCores = device.IsCuda ? null : Environment.ProcessorCount,
            Threads = device.IsCuda ? null : TorchThreads.Current,
            HasAvx512Bf16 = device.Cpu?.HasAvx512Bf16,
            TorchSharpVersion = torchSharpVersion,
            LibTorchVersion = libTorchVersion,
            LibTorchFolder = libTorchFolder,
            Backend = backend,
        }).ToList();
    }

    /// <summary>The SDBackend MSBuild property this assembly was built with (stamped by the csproj).</summary>
    public static string BuildBackend() =>
        typeof(DeviceProbe).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(attribute => attribute.Key == "SDBackend")?.Value ?? "unknown";
}
