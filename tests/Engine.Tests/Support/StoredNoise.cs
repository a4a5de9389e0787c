using PSStableDiffusion.Engine.Schedulers;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>Replays the noise a golden case stored (<c>noise00</c>, <c>noise01</c>, …) in draw order, checking shapes.</summary>
public sealed class StoredNoise(GoldenCase golden) : INoiseSource
{
    private int _next;

    public int Drawn => _next;

    public Tensor Randn(long[] shape, ScalarType dtype)
    {
        var name = $"noise{_next++:D2}";
        Assert.True(golden.Has(name), $"{golden.Name}: the pipeline drew more noise than the reference ({name} is missing).");
        var stored = golden.Tensor(name);
        Assert.Equal(stored.shape, shape);
        return stored.to(dtype);
    }
}
