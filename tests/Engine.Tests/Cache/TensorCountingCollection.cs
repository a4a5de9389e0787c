using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Cache;

/// <summary>Tests that count tensors process-wide, so nothing else may create tensors while they run.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TensorCountingCollection
{
    public const string Name = "Tensor counting (not in parallel)";
}
