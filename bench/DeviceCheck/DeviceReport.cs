using System.Text.Json.Nodes;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

namespace PSStableDiffusion.DeviceCheck;

/// <summary>What Get-SDDevice reports, from the same engine calls, for a machine without PowerShell.</summary>
internal static class DeviceReport
{
    public static JsonObject Describe()
    {
        var devices = new JsonArray();
        var found = ComputeDevices.Discover();
        foreach (var device in found)
        {
            devices.Add(new JsonObject
            {
                ["device"] = device.Device,
                ["type"] = device.IsCuda ? "cuda" : "cpu",
                ["index"] = device.Index,
                ["name"] = device.Cpu?.Name,
                ["logical_cores"] = device.IsCuda ? null : Environment.ProcessorCount,
                ["threads"] = device.IsCuda ? null : torch.get_num_threads(),
                ["has_avx512_bf16"] = device.Cpu?.HasAvx512Bf16,
            });
        }
        return new JsonObject { ["devices"] = devices, ["gpu_memory"] = GpuMemoryReport.Describe(found) };
    }

    /// <summary>The libtorch in use: its folder (--libtorch or the settings file) and version, and TorchSharp's.</summary>
    public static JsonObject LibTorch()
    {
        var folder = LibTorchFolder.LoadedFolder;
        return new JsonObject
        {
            ["folder"] = folder,
            ["version"] = (folder is null ? null : LibTorchFolder.Version(folder)) ?? ComputeDevices.LibTorchVersion,
            ["torchsharp"] = ComputeDevices.TorchSharpVersion,
            ["cuda_available"] = torch.cuda.is_available(),
        };
    }
}
