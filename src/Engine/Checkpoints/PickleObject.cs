namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>
/// An instance of an allow-listed class (e.g. Lightning's <c>ModelCheckpoint</c>, <c>ParameterDict</c>): inert, with
/// only its class name. It compares by identity, as a Python object without <c>__eq__</c> does, so
/// it can be a dict key.
/// </summary>
internal sealed class PickleObject(PickleGlobal cls)
{
    public PickleGlobal Class { get; } = cls;

    /// <summary>The state BUILD gave it (already unpickled data: containers, scalars, tensor references), or null.
    /// Kept as data and never applied: a torch 1.11-era ParameterDict holds its tensors in
    /// <c>_parameters</c> here.</summary>
    public object? State { get; set; }

    public override string ToString() => Class.FullName + " object";
}
