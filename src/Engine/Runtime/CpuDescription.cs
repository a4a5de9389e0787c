using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>The processor this process runs on: its name and the bfloat16 instructions libtorch can use.</summary>
/// <param name="Name">The model name the platform reports; null when unknown.</param>
/// <param name="HasAvx512Bf16">AVX512_BF16 (bfloat16 dot products); null when it cannot be told (not x86).</param>
/// <param name="HasAmxBf16">AMX-BF16 tiles (Sapphire Rapids and later); null when it cannot be told.</param>
public sealed record CpuDescription(string? Name, bool? HasAvx512Bf16, bool? HasAmxBf16)
{
    private const string CpuInfoPath = "/proc/cpuinfo";
    private static readonly Lazy<CpuDescription> CurrentCpu = new(Describe);

    /// <summary>This machine's processor (read once).</summary>
    public static CpuDescription Current => CurrentCpu.Value;

    /// <summary>Whether the CPU has any bfloat16 instructions (without them libtorch emulates bf16, many
    /// times slower).</summary>
    public bool HasBFloat16Instructions => HasAvx512Bf16 == true || HasAmxBf16 == true;

    private static CpuDescription Describe()
    {
        if (RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && File.Exists(CpuInfoPath))
        {
            // The kernel's flags already account for what the OS enabled (XSAVE state), unlike a raw CPUID.
            string? name = null;
            string[]? flags = null;
            foreach (var line in File.ReadLines(CpuInfoPath))
            {
                var colon = line.IndexOf(':');
                if (colon < 0) continue;
                var key = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                if (name is null && key == "model name") name = value;
                if (flags is null && key == "flags") flags = value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (name is not null && flags is not null) break;
            }
            if (flags is not null)
                return new CpuDescription(name, flags.Contains("avx512_bf16"), flags.Contains("amx_bf16"));
            return new CpuDescription(name, HasAvx512Bf16FromCpuid(), null);
        }

        var identifier = Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER");
        return new CpuDescription(
            string.IsNullOrWhiteSpace(identifier) ? null : identifier, HasAvx512Bf16FromCpuid(), null);
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
