namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>The tests that expect the memory check to refuse, and the one that turns it off process-wide
/// (<c>SD_MEMORY_CHECK</c>): one collection, so they never overlap.</summary>
public static class MemoryCheckCollection
{
    public const string Name = "memory check";
}
