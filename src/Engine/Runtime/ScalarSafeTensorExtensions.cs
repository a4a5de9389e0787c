using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>Lets model code say <c>x.ScalarSafe() + residual</c> where a formula starts from a plain tensor.</summary>
internal static class ScalarSafeTensorExtensions
{
    /// <summary>The tensor, viewed as a <see cref="ScalarSafeTensor"/> (no copy).</summary>
    public static ScalarSafeTensor ScalarSafe(this Tensor tensor) => new(tensor);
}
