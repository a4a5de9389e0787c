namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>The unpickler ran off the end of a file's first bytes; <see cref="Needed"/> is how far it
/// wanted to read.</summary>
internal sealed class PickleNeedsMoreDataException(long needed)
    : CheckpointFormatException($"The pickle continues past byte {needed}.")
{
    public long Needed { get; } = needed;
}
