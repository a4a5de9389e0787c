using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>A storage named by a persistent id: <c>('storage', torch.FloatStorage, key, location, numel)</c>.</summary>
/// <remarks>A storage view of the legacy format is the element range [<see cref="RootOffset"/>,
/// RootOffset + ElementCount) of the storage <see cref="RootKey"/>; otherwise RootKey is Key and
/// RootOffset 0.</remarks>
internal sealed record TorchStorageRef(string Key, ScalarType DType, string Location, long ElementCount)
{
    public string RootKey { get; init; } = Key;

    public long RootOffset { get; init; }
}
