using static TorchSharp.torch;

namespace PSStableDiffusion.Engine;

/// <summary>
/// Precisions a user can ask for. float16 is CUDA-only: a CPU fp16 matmul is ~200x slower than fp32. Auto is resolved
/// to one of the others before a model loads (<see cref="Runtime.PrecisionPolicy"/>); a <see cref="ComputeTarget"/>
/// never holds it.
/// </summary>
public enum Precision { Float32, BFloat16, Float16, Auto }
