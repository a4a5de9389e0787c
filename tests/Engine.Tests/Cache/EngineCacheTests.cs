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

    /// <summary>Clear-SDEngine asks the user on a snapshot, then clears what was chosen: the cache stays usable while it
    /// asks, and an engine loaded again meanwhile (a new engine) is not the one that was chosen.</summary>
    [Fact]
    public async Task ClearingChosenSnapshotsFreesOnlyThoseStillLoaded()
    {
        var cache = new EngineCache();
        var first = new CountingEngine();
        var other = new CountingEngine();
        using (cache.Acquire(Key("/a"), () => first, CancellationToken.None)) { }
        using (cache.Acquire(Key("/b"), () => other, CancellationToken.None)) { }
        var chosen = cache.List().Where(e => e.Model == "/a").ToList();

        // While "the user is asked", another runspace loads and uses a model: the cache's lock is not held.
        await Task.Run(() => { using var lease = cache.Acquire(Key("/c"), () => new CountingEngine(), CancellationToken.None); })
            .WaitAsync(TimeSpan.FromSeconds(10));

        var removed = Assert.Single(cache.Clear(chosen));
        Assert.Equal("/a", removed.Model);
        Assert.True(first.Disposed);
        Assert.False(other.Disposed);
        Assert.Equal(["/b", "/c"], cache.List().Select(e => e.Model).Order().ToArray());

        // The same snapshot again: "/a" is gone, and a reloaded "/a" is another engine that stays.
        var reloaded = new CountingEngine();
        using (cache.Acquire(Key("/a"), () => reloaded, CancellationToken.None)) { }
        Assert.Empty(cache.Clear(chosen));
        Assert.False(reloaded.Disposed);
    }

    [Fact]
    public void EachDeviceHoldsOneEngineOfAModel()
    {
        // No GPU is touched: the cache only compares targets ("cuda" is parsed to cuda:0 before it gets here).
        var cache = new EngineCache();
        var loads = 0;
        CountingEngine Load() { loads++; return new CountingEngine(); }
        foreach (var device in new[] { "cuda:0", "cuda:1", "cuda:0", "cpu", "cuda:1" })
            using (cache.Acquire(new EngineKey("/m", new ComputeTarget(device, Precision.Float16)), Load, CancellationToken.None)) { }
        Assert.Equal(3, loads);
        Assert.Equal(new[] { "cpu", "cuda:0", "cuda:1" }, cache.List().Select(e => e.Device).Order());
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
