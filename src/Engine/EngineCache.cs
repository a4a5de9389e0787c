namespace PSStableDiffusion.Engine;

/// <summary>
/// One loaded model per (model, device, dtype) per process, shared by every cmdlet call and runspace.
/// A model is never loaded twice at once, and calls on one model are serialised (a lease holds its gate),
/// so <c>ForEach-Object -Parallel</c> and thread jobs are safe. Different models run concurrently.
/// </summary>
public sealed class EngineCache
{
    private readonly object _mapLock = new();
    private readonly Dictionary<EngineKey, Entry> _entries = new();

    public static EngineCache Shared { get; } = new();

    /// <summary>
    /// Returns a lease on the engine for <paramref name="key"/>, loading it with <paramref name="load"/> if needed, and
    /// again when the cached engine's files changed since it was loaded (<see cref="ICachedEngine.ChangedSinceLoad"/>;
    /// <paramref name="log"/> says so). The lease must be disposed; until then other callers of the same key wait
    /// (cancellably).
    /// </summary>
    public EngineLease<T> Acquire<T>(
        EngineKey key, Func<T> load, CancellationToken cancellation, Action<string>? log = null)
        where T : class, ICachedEngine
    {
        while (true)
        {
            var entry = EntryFor(key);
            entry.Gate.Wait(cancellation);
            if (IsRemoved(entry))
            {
                // Cleared (or its load failed) while this call waited: what it held goes, and the call starts again on
                // the entry the map holds now, so a model is never loaded twice at once.
                DisposeEntry(entry);
                continue;
            }
            try
            {
                return Lease<T>(entry, load, log);
            }
            catch
            {
                // A failed load leaves nothing behind, so the next call (and every waiter) tries again from scratch.
                lock (_mapLock)
                {
                    if (entry.Engine is null && _entries.TryGetValue(key, out var current) && current == entry)
                    {
                        _entries.Remove(key);
                        entry.Removed = true;
                    }
                }
                ReleaseGate(entry);
                throw;
            }
        }
    }

    private Entry EntryFor(EngineKey key)
    {
        lock (_mapLock)
        {
            if (!_entries.TryGetValue(key, out var entry))
            {
                entry = new Entry(key);
                _entries[key] = entry;
            }
            return entry;
        }
    }

    private bool IsRemoved(Entry entry)
    {
        lock (_mapLock) return entry.Removed;
    }

    /// <summary>Holding <paramref name="entry"/>'s gate: (re)loads its engine where needed and hands out
    /// the lease.</summary>
    private EngineLease<T> Lease<T>(Entry entry, Func<T> load, Action<string>? log) where T : class, ICachedEngine
    {
        // Holding the gate, nobody uses the engine: a stale one can go (its mapped files with it) before the reload.
        if (entry.Engine?.ChangedSinceLoad() is { } change)
        {
            log?.Invoke($"Reloading '{entry.Key.ModelSource}': {change}.");
            var stale = entry.Engine;
            entry.Engine = null; // even when its Dispose throws, a half-disposed engine is never handed out again
            stale.Dispose();
        }
        if (entry.Engine is null)
        {
            entry.Engine = load();
            entry.LoadedAt = DateTimeOffset.Now;
        }
        if (entry.Engine is not T typed)
            throw new InvalidOperationException(
                $"The cached engine for '{entry.Key.ModelSource}' is a " +
                $"{entry.Engine.GetType().Name}, not a {typeof(T).Name}.");
        entry.LastUsed = DateTimeOffset.Now;
        entry.Uses++;
        entry.Busy = true;
        return new EngineLease<T>(typed, () => Release(entry));
    }

    /// <summary>Snapshots of the loaded engines.</summary>
    public IReadOnlyList<EngineInfo> List()
    {
        lock (_mapLock)
        {
            return _entries.Values.Where(e => e.Engine is not null).Select(Snapshot).ToList();
        }
    }

    /// <summary>Bytes the loaded engines on <paramref name="device"/> (<c>cpu</c>, <c>cuda:N</c>) hold, leaving out
    /// <paramref name="except"/>: what freeing them would give back to that device (its GPU memory check).</summary>
    internal long WeightBytesOn(string device, ICachedEngine? except = null)
    {
        lock (_mapLock)
        {
            return _entries.Values
                .Where(e => e.Engine is not null && e.Engine != except && e.Key.Target.DeviceName == device)
                .Sum(e => e.Engine!.MemoryBytes);
        }
    }

    /// <summary>
    /// Frees the engines matching <paramref name="match"/> (all when null). A busy engine is freed when its current
    /// call ends. Returns the snapshots of what was removed. <paramref name="match"/> runs under the cache's lock, so
    /// it must decide at once: a caller that asks the user first takes <see cref="List"/>, asks, then passes the
    /// chosen snapshots to <see cref="Clear(IReadOnlyCollection{EngineInfo})"/>. When an engine's Dispose throws, the
    /// others are still freed, then <see cref="EngineFreeFailedException"/> names the first that failed.
    /// </summary>
    public IReadOnlyList<EngineInfo> Clear(Func<EngineInfo, bool>? match = null)
    {
        var removed = new List<EngineInfo>();
        var idle = new List<Entry>();
        lock (_mapLock)
        {
            foreach (var entry in _entries.Values.ToList())
            {
                if (entry.Engine is null) continue;
                var info = Snapshot(entry);
                if (match is not null && !match(info)) continue;
                _entries.Remove(entry.Key);
                // Marked and tried under the lock that ReleaseGate takes, so exactly one side disposes: this call when
                // the gate is free, else whoever holds it now, when it lets go.
                entry.Removed = true;
                removed.Add(info);
                if (entry.Gate.Wait(0)) idle.Add(entry);
            }
        }
        // Every engine is disposed (and every gate opened) even when one's Dispose throws; the first failure is then
        // reported, after the rest are done, with what was removed.
        (string Model, Exception Error)? failure = null;
        foreach (var entry in idle)
        {
            try
            {
                DisposeEntry(entry);
            }
            catch (Exception e)
            {
                failure ??= (entry.Key.ModelSource, e);
            }
        }
        if (removed.Count > 0) GC.Collect();
        if (failure is { } first) throw new EngineFreeFailedException(first.Model, removed, first.Error);
        return removed;
    }

    /// <summary>Frees the engines these snapshots (from <see cref="List"/>) describe, where they are still loaded:
    /// one that was cleared and loaded again since is a new engine, and stays.</summary>
    public IReadOnlyList<EngineInfo> Clear(IReadOnlyCollection<EngineInfo> engines) =>
        Clear(info => engines.Any(chosen => chosen.Model == info.Model && chosen.Device == info.Device
            && chosen.Precision == info.Precision && chosen.LoadedAt == info.LoadedAt));

    private static EngineInfo Snapshot(Entry entry) => new(entry.Key.ModelSource, entry.Key.Target.DeviceName,
        entry.Key.Target.DTypeName, entry.Engine!.KindName, entry.Engine.MemoryBytes, entry.LoadedAt, entry.LastUsed,
        entry.Uses, entry.Busy);

    private void Release(Entry entry)
    {
        entry.Busy = false;
        entry.LastUsed = DateTimeOffset.Now;
        ReleaseGate(entry);
    }

    /// <summary>Lets go of a held gate; an entry that was removed meanwhile has its engine disposed first. The check
    /// and the release share the cache's lock with <see cref="Clear(Func{EngineInfo, bool}?)"/>, so no removal falls
    /// between them (which would leave an engine that nobody disposes).</summary>
    private void ReleaseGate(Entry entry)
    {
        lock (_mapLock)
        {
            if (!entry.Removed)
            {
                entry.Gate.Release();
                return;
            }
        }
        DisposeEntry(entry);
    }

    /// <summary>Disposes the entry's engine and opens its gate, even when the dispose fails: a call already waiting
    /// on the gate must never wait forever.</summary>
    private static void DisposeEntry(Entry entry)
    {
        try
        {
            entry.Engine?.Dispose();
        }
        finally
        {
            entry.Engine = null;
            entry.Gate.Release();
        }
    }

    private sealed class Entry(EngineKey key)
    {
        public EngineKey Key { get; } = key;
        public SemaphoreSlim Gate { get; } = new(1, 1);
        public ICachedEngine? Engine { get; set; }
        public DateTimeOffset LoadedAt { get; set; }
        public DateTimeOffset LastUsed { get; set; }
        public int Uses { get; set; }
        public bool Busy { get; set; }
        /// <summary>No longer in the map (cleared, or its load failed): whoever holds its gate disposes
        /// its engine.</summary>
        public bool Removed { get; set; }
    }
}
