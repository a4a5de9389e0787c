namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>A Python tuple.</summary>
internal sealed record PickleTuple(object?[] Items)
{
    public int Count => Items.Length;

    public object? this[int index] => Items[index];
}
