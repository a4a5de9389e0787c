using System.Collections.Concurrent;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Cache;

public class EngineCacheTests
{
    private sealed class CountingEngine : ICachedEngine
    {
        private int _disposals;
        public bool Disposed => Disposals > 0;
        public int Disposals => Volatile.Read(ref _disposals);
        public long MemoryBytes => 1234;
        public string KindName => "txt2img";
        public void Dispose() => Interlocked.Increment(ref _disposals);
    }

    private sealed class FailingDisposeEngine : ICachedEngine
    {
        public long MemoryBytes => 1;
        public string KindName => "txt2img";
        public void Dispose() => throw new InvalidOperationException("dispose failed");
    }

    /// <summary>How long a test waits for a call that must not hang before it fails (and cancels the call).</summary>
    private static readonly TimeSpan HangLimit = TimeSpan.FromSeconds(30);

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

    /// <summary>
    /// A call waiting for a busy engine when Clear-SDEngine removes it: once the busy call ends (and its engine is
    /// disposed), the waiter loads the model into the cache again, where later calls find it. It used to load into the
    /// removed entry instead: nothing else could see that engine, so the next call loaded the model a second time
    /// beside it, and the waiter's engine was thrown away after one use.
    /// </summary>
    [Fact]
    public void ACallWaitingOnAClearedEngine_LoadsItIntoTheCacheAgain()
    {
        var cache = new EngineCache();
        var first = new CountingEngine();
        var second = new CountingEngine();
        var holder = cache.Acquire(Key("/m"), () => first, CancellationToken.None);
        using var limit = new CancellationTokenSource(HangLimit);
        EngineLease<CountingEngine>? waiterLease = null;
        Exception? waiterError = null;
        var waiter = new Thread(() =>
        {
            try { waiterLease = cache.Acquire(Key("/m"), () => second, limit.Token); }
            catch (Exception e) { waiterError = e; }
        });
        waiter.Start();
        Assert.True(SpinWait.SpinUntil(() => (waiter.ThreadState & ThreadState.WaitSleepJoin) != 0, HangLimit),
            "The second call never waited for the busy engine.");

        Assert.Single(cache.Clear());
        holder.Dispose();

        Assert.True(waiter.Join(HangLimit + TimeSpan.FromSeconds(5)), "The waiting call never got an engine.");
        Assert.Null(waiterError);
        Assert.Equal(1, first.Disposals);
        Assert.Same(second, waiterLease!.Engine);
        var info = Assert.Single(cache.List());
        Assert.True(info.Busy);
        waiterLease.Dispose();
        Assert.False(second.Disposed);
        using (var again = cache.Acquire(Key("/m"), () => new CountingEngine(), limit.Token)) Assert.Same(second, again.Engine);
    }

    /// <summary>An engine whose Dispose throws, cleared while busy: the call that waits for it still gets in.</summary>
    [Fact]
    public void AFailedDisposeOfAClearedEngine_DoesNotShutOutTheNextCall()
    {
        var cache = new EngineCache();
        var holder = cache.Acquire<ICachedEngine>(Key("/m"), () => new FailingDisposeEngine(), CancellationToken.None);
        cache.Clear();
        Assert.Throws<InvalidOperationException>(holder.Dispose);

        using var limit = new CancellationTokenSource(HangLimit);
        var next = Task.Run(() => { using var lease = cache.Acquire<ICachedEngine>(Key("/m"), () => new CountingEngine(), limit.Token); });
        Assert.Null(Record.Exception(() => next.Wait(HangLimit + TimeSpan.FromSeconds(5))));
        Assert.True(next.IsCompletedSuccessfully, "The next call waited on a gate that the failed dispose left closed.");
    }

    /// <summary>Clear-SDEngine with two idle engines, the first of which fails to dispose: the second is still disposed
    /// (the loop used to stop at the failure, leaving it loaded and its gate closed to any call waiting on it).</summary>
    [Fact]
    public void AFailedDisposeInClear_StillDisposesTheOtherEngines()
    {
        var cache = new EngineCache();
        var other = new CountingEngine();
        using (cache.Acquire<ICachedEngine>(Key("/failing"), () => new FailingDisposeEngine(), CancellationToken.None)) { }
        using (cache.Acquire<ICachedEngine>(Key("/other"), () => other, CancellationToken.None)) { }

        var error = Assert.Throws<EngineFreeFailedException>(() => cache.Clear());

        Assert.Equal("/failing", error.Model);
        Assert.IsType<InvalidOperationException>(error.InnerException);
        Assert.Equal(["/failing", "/other"], error.Removed.Select(engine => engine.Model).Order());
        Assert.Equal(1, other.Disposals);
        Assert.Empty(cache.List());
    }

    /// <summary>
    /// Clear-SDEngine racing calls on one model (the soak's mix, without the model): every call gets in, and every
    /// engine ever loaded is disposed exactly once by the end. A removal that fell between a releasing call's check and
    /// its release used to leave the engine to nobody (never disposed, its tensors and mapped files kept).
    /// </summary>
    [Fact]
    public void ClearsRacingCalls_DisposeEveryEngineExactlyOnce()
    {
        var cache = new EngineCache();
        var engines = new ConcurrentQueue<CountingEngine>();
        CountingEngine Load()
        {
            var engine = new CountingEngine();
            engines.Enqueue(engine);
            return engine;
        }
        using var limit = new CancellationTokenSource(HangLimit);
        // At least a second and at least 50 clears: on two busy cores a thread-pool task could start only after the
        // callers' second was over (a run saw 0 clears), so every party has its own thread and the race runs until it
        // has really happened (the hang limit still ends it).
        var until = DateTime.UtcNow.AddSeconds(1);
        int calls = 0, clears = 0;
        bool Racing() => (DateTime.UtcNow < until || Volatile.Read(ref clears) < 50) && !limit.IsCancellationRequested;
        Task Start(Action body) => Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var callers = Enumerable.Range(0, 3).Select(_ => Start(() =>
        {
            while (Racing())
            {
                using var lease = cache.Acquire(Key("/m"), Load, limit.Token);
                Assert.False(lease.Engine.Disposed);
                Interlocked.Increment(ref calls);
            }
        })).ToList();
        var clearer = Start(() =>
        {
            while (Racing())
            {
                Interlocked.Add(ref clears, cache.Clear().Count);
                Thread.Yield();
            }
        });
        var all = Task.WhenAll(callers.Append(clearer));
        Assert.Null(Record.Exception(() => all.Wait(HangLimit + TimeSpan.FromSeconds(5))));
        Assert.True(all.IsCompletedSuccessfully, "A call was shut out of the engine.");

        cache.Clear();
        Assert.True(calls > 0 && clears > 0, $"{calls} calls and {clears} clears: the race did not run.");
        Assert.All(engines, engine => Assert.Equal(1, engine.Disposals));
        Assert.Empty(cache.List());
    }
}
