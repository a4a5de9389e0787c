using System.Reflection;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>Finds the devices this build of libtorch can use on this machine (Get-SDDevice, the bench).</summary>
public static class ComputeDevices
{
    /// <summary>The CPU first, then every CUDA device libtorch sees (none with the cpu backend).</summary>
    public static IReadOnlyList<ComputeDevice> Discover(bool includeCpu = true, bool includeCuda = true)
    {
        var devices = new List<ComputeDevice>();
        if (includeCpu) devices.Add(new ComputeDevice("cpu", null, CpuDescription.Current));
        if (includeCuda && torch.cuda.is_available())
        {
            for (var index = 0; index < torch.cuda.device_count(); index++)
                devices.Add(new ComputeDevice($"cuda:{index}", index, null));
        }
        return devices;
    }

    /// <summary>The device a request that names none runs on: the first CUDA device when this build and machine have
    /// one, else the CPU.</summary>
    public static string DefaultDevice => torch.cuda.is_available() ? "cuda:0" : "cpu";

    /// <summary>The libtorch version the native library reports.</summary>
    public static string LibTorchVersion => torch.__version__;

    /// <summary>The TorchSharp package version (without the "+commit" source-link suffix users do
    /// not compare).</summary>
    public static string TorchSharpVersion
    {
        get
        {
            var assembly = typeof(torch).Assembly;
            var informational =
                assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
            return informational?.Split('+')[0] ?? assembly.GetName().Version?.ToString() ?? "unknown";
        }
    }
}
