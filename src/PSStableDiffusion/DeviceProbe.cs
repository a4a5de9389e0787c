using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using TorchSharp;

namespace PSStableDiffusion;

/// <summary>Finds the compute devices TorchSharp can use on this machine.</summary>
internal static class DeviceProbe
{
    private const string CpuInfoPath = "/proc/cpuinfo";

    /// <summary>The CPU first, then every CUDA device libtorch sees (none with the cpu backend).</summary>
    public static IReadOnlyList<SDDeviceInfo> GetDevices(bool includeCpu, bool includeCuda)
    {
        var torchSharpVersion = TorchSharpVersion();
        var libTorchVersion = torch.__version__;
        var backend = BuildBackend();
        var devices = new List<SDDeviceInfo>();

        if (includeCpu)
        {
            var (name, hasBf16) = DescribeCpu();
            devices.Add(new SDDeviceInfo
            {
                Device = "cpu",
                Type = "cpu",
                Name = name,
                LogicalCores = Environment.ProcessorCount,
                Threads = torch.get_num_threads(),
                HasAvx512Bf16 = hasBf16,
                TorchSharpVersion = torchSharpVersion,
                LibTorchVersion = libTorchVersion,
                Backend = backend,
            });
        }

        if (includeCuda && torch.cuda.is_available())
        {
            // TorchSharp exposes no device-name query, so a GPU is known by its ordinal only.
            for (int index = 0; index < torch.cuda.device_count(); index++)
            {
                devices.Add(new SDDeviceInfo
                {
                    Device = $"cuda:{index}",
                    Type = "cuda",
                    Index = index,
                    TorchSharpVersion = torchSharpVersion,
                    LibTorchVersion = libTorchVersion,
                    Backend = backend,
                });
            }
        }

        return devices;
    }

    /// <summary>The SDBackend MSBuild property this assembly was built with (stamped by the csproj).</summary>
    public static string BuildBackend() =>
        typeof(DeviceProbe).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(attribute => attribute.Key == "SDBackend")?.Value ?? "unknown";

    private static string TorchSharpVersion()
    {
        var assembly = typeof(torch).Assembly;
        var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        // Drop the "+<commit>" source-link suffix: users compare package versions.
        return informational?.Split('+')[0] ?? assembly.GetName().Version?.ToString() ?? "unknown";
    }

    internal static (string? Name, bool? HasAvx512Bf16) DescribeCpu()
    {
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && File.Exists(CpuInfoPath))
        {
            // The kernel's flags already account for what the OS enabled (XSAVE state), unlike a raw CPUID.
            string? name = null;
            bool? hasBf16 = null;
            foreach (var line in File.ReadLines(CpuInfoPath))
            {
                var colon = line.IndexOf(':');
                if (colon < 0) continue;
                var key = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                if (name is null && key == "model name") name = value;
                if (hasBf16 is null && key == "flags") hasBf16 = value.Split(' ').Contains("avx512_bf16");
                if (name is not null && hasBf16 is not null) break;
            }
            return (name, hasBf16 ?? HasAvx512Bf16FromCpuid());
        }

        var identifier = Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER");
        return (string.IsNullOrWhiteSpace(identifier) ? null : identifier, HasAvx512Bf16FromCpuid());
    }

    private static bool? HasAvx512Bf16FromCpuid()
    {
        if (!X86Base.IsSupported) return null;
        // Avx512F.IsSupported also checks that the OS saves the AVX-512 registers.
        if (!Avx512F.IsSupported) return false;
        // CPUID leaf 7 sub-leaf 1, EAX bit 5 = AVX512_BF16.
        var maxLeaf = X86Base.CpuId(0, 0).Eax;
        if (maxLeaf < 7) return false;
        var (eax, _, _, _) = X86Base.CpuId(7, 1);
        return (eax & (1 << 5)) != 0;
    }
}
