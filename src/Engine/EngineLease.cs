namespace PSStableDiffusion.Engine;

/// <summary>Exclusive use of a cached engine until disposed.</summary>
public sealed class EngineLease<T>(T engine, Action release) : IDisposable where T : class
{
    private Action? _release = release;

    public T Engine { get; } = engine;

    public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
}
