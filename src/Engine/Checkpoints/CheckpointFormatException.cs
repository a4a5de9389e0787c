namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>A checkpoint file that is malformed, truncated, inconsistent or in an unsupported layout.</summary>
public class CheckpointFormatException : IOException
{
    public CheckpointFormatException(string message) : base(message) { }

    public CheckpointFormatException(string message, Exception inner) : base(message, inner) { }
}
