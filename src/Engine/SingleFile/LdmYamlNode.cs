using System.Text;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>A node of a parsed ldm YAML file: a mapping, a sequence or a scalar.</summary>
public abstract class LdmYamlNode
{
    private protected LdmYamlNode(int line) => Line = line;

    /// <summary>1-based line where the node starts (for messages).</summary>
    public int Line { get; }
}
