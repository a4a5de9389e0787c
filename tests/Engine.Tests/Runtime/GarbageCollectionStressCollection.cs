using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>Runs alone: its collections would expose any other test's implicit scalars to the same race.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GarbageCollectionStressCollection
{
    public const string Name = "Garbage-collection stress (alone)";
}
