using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Where stochastic schedulers get their Gaussian noise. Implementations return a new tensor on the CPU (or any device;
/// the scheduler moves it next to the sample), drawn in call order.
/// </summary>
public interface INoiseSource
{
    /// <summary>Standard normal noise of the given shape and dtype.</summary>
    Tensor Randn(long[] shape, ScalarType dtype);
}
