using System.Text;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>A YAML sequence.</summary>
public sealed class LdmYamlList : LdmYamlNode
{
    internal LdmYamlList(int line, List<LdmYamlNode> items) : base(line) => Items = items;

    public IReadOnlyList<LdmYamlNode> Items { get; }
}
