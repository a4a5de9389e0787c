using PSStableDiffusion.Engine.Runtime;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// The default intra-op thread count: libtorch's own default (physical cores), capped at the processors this process
/// may use (bench/RESULTS.md, "Threads", measured the cost of going over them).
/// </summary>
public class TorchThreadsTests
{
    [Theory]
    [InlineData(8, 16, 8)]   // SMT: libtorch counts 8 physical cores, .NET 16 logical processors
    [InlineData(16, 2, 2)]   // a 2-CPU container (cgroup quota or affinity) on a 16-core host
    [InlineData(2, 2, 2)]    // neither: this CI machine
    [InlineData(0, 4, 4)]    // libtorch reported nothing usable
    [InlineData(4, 0, 1)]
    public void TheDefaultIsLibTorchsCappedAtTheUsableProcessors(int libTorchDefault, int processorCount, int expected)
    {
        Assert.Equal(expected, TorchThreads.ChooseDefault(libTorchDefault, processorCount));
    }

    [Fact]
    public void TheRecommendedCountIsNeverMoreThanTheUsableProcessors()
    {
        Assert.InRange(TorchThreads.Recommended, 1, Environment.ProcessorCount);
        Assert.True(TorchThreads.Recommended <= TorchThreads.LibTorchDefault);
    }
}
