namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>A Python list (also used for sets, which only appear as data).</summary>
internal sealed class PickleList : List<object?>
{
}
