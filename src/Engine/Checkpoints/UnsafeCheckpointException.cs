namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>
/// A checkpoint whose pickle asks for something the restricted unpickler refuses: a global outside the allow list
/// (which in Python would run code) or an opcode it does not interpret. Nothing named in the pickle was ever called.
/// </summary>
public sealed class UnsafeCheckpointException : CheckpointFormatException
{
    public UnsafeCheckpointException(string message, string? refusedGlobal = null, string? refusedOpcode = null)
        : base(message)
    {
        RefusedGlobal = refusedGlobal;
        RefusedOpcode = refusedOpcode;
    }

    /// <summary>The refused global as <c>module.name</c>, when a global was refused.</summary>
    public string? RefusedGlobal { get; }

    /// <summary>The refused opcode's pickle name, when an opcode was refused.</summary>
    public string? RefusedOpcode { get; }
}
