namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary><c>numpy.dtype(code)</c>: enough to read a numpy scalar of a plain numeric type.</summary>
internal sealed class NumpyDType(string code)
{
    public string Code { get; } = code;

    /// <summary>From the dtype's pickled state: '&lt;' little, '&gt;' big, '|' not applicable, '=' native.</summary>
    public string ByteOrder { get; set; } = "<";

    /// <summary>The scalar as a .NET number (double, long or bool) for the common numeric types; otherwise null, and
    /// the caller keeps a placeholder.</summary>
    public object? ToScalar(byte[] raw)
    {
        if (ByteOrder == ">" && raw.Length > 1) return null; // big-endian scalars stay placeholders
        return (Code, raw.Length) switch
        {
            ("f8", 8) => BitConverter.ToDouble(raw),
            ("f4", 4) => (double)BitConverter.ToSingle(raw),
            ("f2", 2) => (double)BitConverter.ToHalf(raw),
            ("i8", 8) => BitConverter.ToInt64(raw),
            ("i4", 4) => (long)BitConverter.ToInt32(raw),
            ("i2", 2) => (long)BitConverter.ToInt16(raw),
            ("i1", 1) => (long)(sbyte)raw[0],
            ("u1", 1) => (long)raw[0],
            ("u2", 2) => (long)BitConverter.ToUInt16(raw),
            ("u4", 4) => (long)BitConverter.ToUInt32(raw),
            ("b1", 1) => raw[0] != 0,
            _ => null,
        };
    }
}
