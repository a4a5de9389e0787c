using System.Text;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>A YAML mapping; keys keep their file order.</summary>
public sealed class LdmYamlMap : LdmYamlNode
{
    private readonly List<KeyValuePair<string, LdmYamlNode>> _entries = new();

    internal LdmYamlMap(int line) : base(line) { }

    public IReadOnlyList<KeyValuePair<string, LdmYamlNode>> Entries => _entries;

    public LdmYamlNode? this[string key] => _entries.FirstOrDefault(e => e.Key == key).Value;

    internal void Add(string key, LdmYamlNode value, string source)
    {
        if (_entries.Any(e => e.Key == key))
            throw new FormatException($"{source}:{value.Line}: duplicate key '{key}'.");
        _entries.Add(new(key, value));
    }
}
