namespace PSStableDiffusion;

/// <summary>One compute device that TorchSharp can run the pipelines on, as reported by Get-SDDevice.</summary>
public sealed class SDDeviceInfo
{
    /// <summary>The torch device string to pass to -Device: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public required string Device { get; init; }

    /// <summary><c>cpu</c> or <c>cuda</c>.</summary>
    public required string Type { get; init; }

    /// <summary>The CUDA ordinal; null for the CPU.</summary>
    public int? Index { get; init; }

    /// <summary>The processor model name, where the platform tells it; null when unknown.</summary>
    public string? Name { get; init; }

    /// <summary>CPU only: logical processors available to this process.</summary>
    public int? LogicalCores { get; init; }

    /// <summary>CPU only: intra-op threads libtorch uses (torch.get_num_threads()).</summary>
    public int? Threads { get; init; }

    /// <summary>
    /// CPU only: whether the processor has the AVX512_BF16 instructions that make bfloat16 matmuls about twice as
    /// fast as float32. Null when it cannot be told (other architectures, GPUs).
    /// </summary>
    public bool? HasAvx512Bf16 { get; init; }

    /// <summary>Version of the TorchSharp managed assembly.</summary>
    public required string TorchSharpVersion { get; init; }

    /// <summary>
    /// Version of the libtorch native library: the one TorchSharp was built against, or, for a module built with
    /// build.ps1 -LibTorch, the version that folder states.
    /// </summary>
    public required string LibTorchVersion { get; init; }

    /// <summary>The folder libtorch was loaded from (build.ps1 -LibTorch); null when the module carries its
    /// own natives.</summary>
    public string? LibTorchFolder { get; init; }

    /// <summary>Which TorchSharp native package this module was built with: <c>cpu</c> or <c>cuda</c>.</summary>
    public required string Backend { get; init; }
}
