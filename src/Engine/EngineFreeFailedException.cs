namespace PSStableDiffusion.Engine;

/// <summary>
/// Freeing a cached engine failed (its Dispose threw). The cache stays consistent: every engine in
/// <see cref="Removed"/> is out of the cache and every other one was still freed. <see cref="Model"/> names the first
/// engine that failed; the inner exception says why.
/// </summary>
public sealed class EngineFreeFailedException(string model, IReadOnlyList<EngineInfo> removed, Exception inner)
    : Exception($"Freeing the cached engine of '{model}' failed: {inner.Message}", inner)
{
    public string Model { get; } = model;

    /// <summary>Every engine the clear took out of the cache, the failed one included.</summary>
    public IReadOnlyList<EngineInfo> Removed { get; } = removed;
}
