namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>Stands in for Python's None used as a dictionary key.</summary>
internal sealed class PickleNone
{
    public static readonly PickleNone Instance = new();

    public override string ToString() => "None";
}
