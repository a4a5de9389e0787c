namespace PSStableDiffusion.Engine;

/// <summary>Anything the cache can hold: a loaded model that reports its memory and can describe itself.</summary>
public interface ICachedEngine : IDisposable
{
    long MemoryBytes { get; }
    string KindName { get; }

    /// <summary>What changed in the engine's files since it was loaded, in words; null when nothing did (or the engine
    /// has no files).</summary>
    string? ChangedSinceLoad() => null;
}
