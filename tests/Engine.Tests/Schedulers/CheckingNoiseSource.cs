using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Wraps a noise source and checks every draw against the stored one, exactly.</summary>
internal sealed class CheckingNoiseSource(INoiseSource inner, IReadOnlyList<Tensor> expected) : INoiseSource
{
    public int Drawn { get; private set; }

    public Tensor Randn(long[] shape, ScalarType dtype)
    {
        var actual = inner.Randn(shape, dtype);
        Assert.True(Drawn < expected.Count, $"draw {Drawn} was not made by diffusers");
        Golden.AssertClose(expected[Drawn], actual, 0.0, $"noise_{Drawn:D3}");
        Drawn++;
        return actual;
    }
}
