using Xunit;

namespace PSStableDiffusion.Engine.Tests.Cache;

public class EngineCacheTests
{
    private sealed class CountingEngine : ICachedEngine
    {
        public bool Disposed { get; private set; }
        public long MemoryBytes => 1234;
        public string KindName => "txt2img";
        public void Dispose() => Disposed = true;
    }

    private static EngineKey Key(string model) => new(model, ComputeTarget.Cpu32);

    [Fact]
    public void ConcurrentCallersShareOneLoadAndAreSerialised()
    {
        var cache = new EngineCache();
        int loads = 0, inside = 0, maxInside = 0;
        Parallel.For(0, 8, _ =>
        {
            using var lease = cache.Acquire(Key("/models/a"), () =>
            {
                Interlocked.Increment(ref loads);
                Thread.Sleep(50);
                return new CountingEngine();
            }, CancellationToken.None);
            var now = Interlocked.Increment(ref inside);
            lock (cache) maxInside = Math.Max(maxInside, now);
            Thread.Sleep(5);
            Interlocked.Decrement(ref inside);
        });
        Assert.Equal(1, loads);
        Assert.Equal(1, maxInside);
        var info = Assert.Single(cache.List());
        Assert.Equal(8, info.Uses);
        Assert.Equal(1234, info.MemoryBytes);
        Assert.False(info.Busy);
    }

    [Fact]
    public void DifferentTargetsAreDifferentEngines()
    {
        var cache = new EngineCache();
        using (cache.Acquire(Key("/m"), () => new CountingEngine(), CancellationToken.None)) { }
        using (cache.Acquire(new EngineKey("/m", new ComputeTarget("cpu", Precision.BFloat16)), () => new CountingEngine(), CancellationToken.None)) { }
        Assert.Equal(2, cache.List().Count);
    }

    [Fact]
    public void ClearDisposesIdleEnginesAndDefersBusyOnes()
    {
        var cache = new EngineCache();
        var idle = new CountingEngine();
        var busy = new CountingEngine();
        using (cache.Acquire(Key("/idle"), () => idle, CancellationToken.None)) { }
        var lease = cache.Acquire(Key("/busy"), () => busy, CancellationToken.None);

        var removed = cache.Clear();

        Assert.Equal(2, removed.Count);
        Assert.True(idle.Disposed);
        Assert.False(busy.Disposed);
        Assert.Empty(cache.List());
        lease.Dispose();
        Assert.True(busy.Disposed);
    }

    [Fact]
    public void AFailedLoadIsNotCachedAndCanBeRetried()
    {
        var cache = new EngineCache();
        Assert.Throws<InvalidDataException>(() =>
            cache.Acquire<CountingEngine>(Key("/bad"), () => throw new InvalidDataException("corrupt"), CancellationToken.None));
        Assert.Empty(cache.List());
        using var lease = cache.Acquire(Key("/bad"), () => new CountingEngine(), CancellationToken.None);
        Assert.Single(cache.List());
    }

    [Fact]
    public void WaitingForABusyEngineCanBeCancelled()
    {
        var cache = new EngineCache();
        using var lease = cache.Acquire(Key("/m"), () => new CountingEngine(), CancellationToken.None);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        Assert.ThrowsAny<OperationCanceledException>(() =>
            cache.Acquire(Key("/m"), () => new CountingEngine(), cts.Token));
    }
}
