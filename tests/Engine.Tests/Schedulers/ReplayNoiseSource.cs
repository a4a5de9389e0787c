using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Replays stored noise tensors in order, checking the shape and dtype diffusers drew them with.</summary>
internal sealed class ReplayNoiseSource(IReadOnlyList<Tensor> draws) : INoiseSource
{
    public int Drawn { get; private set; }

    public Tensor Randn(long[] shape, ScalarType dtype)
    {
        Assert.True(Drawn < draws.Count, $"draw {Drawn} was not made by diffusers (only {draws.Count} stored)");
        var next = draws[Drawn++];
        Assert.Equal(next.shape, shape);
        Assert.Equal(next.dtype, dtype);
        return next.clone();
    }
}
