using Xunit;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>
/// Test classes that run thousands of small scheduler steps, each a chain of tensor-by-number operations, run alone.
/// </summary>
/// <remarks>
/// Why: TorchSharp 0.107 turns each number into a finalizable <c>Scalar</c> and passes only its handle to libtorch, so
/// the object is unreachable during the native call (dotnet/TorchSharp PR #1434, open). A garbage collection started by
/// another thread in that window lets the finalizer free the native scalar while libtorch reads it: the rare
/// "Unknown scalar type" / "toFloat" failures seen when these classes ran beside the rest of the suite. With no other
/// test thread allocating, a collection can only start on the stepping thread itself, between native calls.
/// </remarks>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SchedulerStepsCollection
{
    public const string Name = "Scheduler steps (not in parallel)";
}
