using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine;

/// <summary>Where and in what dtype a model computes; parsed once from user input and used as part of the
/// cache key.</summary>
public sealed record ComputeTarget(string DeviceName, Precision Precision)
{
    public static ComputeTarget Cpu32 { get; } = new("cpu", Precision.Float32);

    public Device Device => torch.device(DeviceName);

    public ScalarType DType => Precision switch
    {
        Precision.BFloat16 => ScalarType.BFloat16,
        Precision.Float16 => ScalarType.Float16,
        _ => ScalarType.Float32,
    };

    public bool IsCuda => DeviceName.StartsWith("cuda", StringComparison.Ordinal);

    /// <summary>N of a <c>cuda:N</c> target (<see cref="Parse"/> writes plain <c>cuda</c> as <c>cuda:0</c>); null on
    /// the CPU.</summary>
    public int? CudaOrdinal => IsCuda ? int.Parse(DeviceName.AsSpan("cuda:".Length), CultureInfo.InvariantCulture) : null;

    /// <summary>The dtype name as diffusers/torch print it (float32, bfloat16, float16).</summary>
    public string DTypeName => Precision switch
    {
        Precision.BFloat16 => "bfloat16",
        Precision.Float16 => "float16",
        _ => "float32",
    };

    /// <summary>
    /// Validates a device string (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>) and precision against what this build and
    /// machine offer. Throws <see cref="ArgumentException"/> naming the bad value.
    /// </summary>
    public static ComputeTarget Parse(string? device, Precision precision)
    {
        var name = string.IsNullOrWhiteSpace(device) ? "cpu" : device.Trim().ToLowerInvariant();
        if (name == "cuda") name = "cuda:0";
        if (name != "cpu")
        {
            if (!name.StartsWith("cuda:", StringComparison.Ordinal)
                || !int.TryParse(name.AsSpan(5), out var index) || index < 0)
                throw new ArgumentException(
                    $"Unknown device '{device}'. Use 'cpu', 'cuda' or 'cuda:N'.", nameof(device));
            if (!torch.cuda.is_available())
                throw new NotSupportedException(
                    $"Device '{device}' needs CUDA, but this build of PSStableDiffusion has no usable CUDA backend " +
                    "(build it with './build.ps1 -Backend cuda' on a machine with an NVIDIA driver).");
            if (index >= torch.cuda.device_count())
                throw new ArgumentException(
                    $"Device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) found.",
                    nameof(device));
        }
        if (precision == Precision.Auto)
            throw new ArgumentException(
                "Precision 'Auto' is resolved to a dtype before a target is made (PrecisionPolicy.Choose).",
                nameof(precision));
        if (precision == Precision.Float16 && name == "cpu")
            throw new NotSupportedException(
                "Precision 'float16' is only offered on CUDA: on the CPU it " +
                "is orders of magnitude slower. Use 'bfloat16' or 'float32'.");
        return new ComputeTarget(name, precision);
    }

    public override string ToString() => $"{DeviceName}/{DTypeName}";
}
