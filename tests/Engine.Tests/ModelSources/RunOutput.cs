using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

/// <summary>One pipeline run's outputs that the model-source tests compare.</summary>
internal sealed record RunOutput(SDImage Image, Tensor FinalLatents, double[] Timesteps) : IDisposable
{
    public void Dispose() => FinalLatents.Dispose();
}
