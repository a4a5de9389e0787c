namespace PSStableDiffusion.Engine;

/// <summary>A snapshot of one cache entry, for Get-SDEngine.</summary>
public sealed record EngineInfo(
    string Model, string Device, string Precision, string Kind, long MemoryBytes,
    DateTimeOffset LoadedAt, DateTimeOffset LastUsed, int Uses, bool Busy);
