namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>An allow-listed global (<c>module.name</c>); it is data here, never something we look
/// up and call.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;

    public override string ToString() => FullName;
}
