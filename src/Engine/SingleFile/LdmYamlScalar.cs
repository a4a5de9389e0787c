using System.Text;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>A YAML scalar, kept as text; typed by the reader that asks for it.</summary>
public sealed class LdmYamlScalar : LdmYamlNode
{
    internal LdmYamlScalar(int line, string text, bool quoted) : base(line) { Text = text; Quoted = quoted; }

    public string Text { get; }
    public bool Quoted { get; }

    /// <summary>Plain <c>null</c>, <c>~</c> or an empty value.</summary>
    public bool IsNull => !Quoted && Text is "" or "~" or "null" or "Null" or "NULL";
}
