using System.Globalization;
using System.Text;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Reads the subset of YAML that ldm / Stability-AI inference configs use: block mappings and block sequences by
/// indentation, flow sequences and mappings (<c>[1, 2, 4]</c>, <c>{a: 1, b: x}</c>, possibly spanning lines), plain and
/// quoted scalars, and comments. Anchors, aliases, tags, block scalars (<c>|</c>, <c>&gt;</c>) and multiple documents
/// are refused with a message naming the line.
/// </summary>
/// <remarks>
/// Written here rather than taken from YamlDotNet: a PowerShell session may already hold another YamlDotNet version
/// (the popular powershell-yaml module ships one), and two versions of one assembly cannot load side by side there.
/// </remarks>
public static class LdmYaml
{
    private sealed record Line(int Number, int Indent, string Text);

    /// <summary>Parses a file.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="FormatException">The text is not in the supported YAML subset; the message names file
    /// and line.</exception>
    public static LdmYamlMap Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ldm config not found: {path}", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses YAML text whose top level is a mapping; <paramref name="source"/> names it
    /// in messages.</summary>
    /// <exception cref="FormatException">The text is not in the supported YAML subset.</exception>
    public static LdmYamlMap Parse(string text, string source = "ldm config")
    {
        var lines = new List<Line>();
        var raw = text.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < raw.Length; i++)
        {
            string line = StripComment(raw[i]).TrimEnd();
            if (line.Trim().Length == 0) continue;
            if (line.Contains('\t') && line.TrimStart(' ').Length != line.TrimStart(' ', '\t').Length)
                throw new FormatException($"{source}:{i + 1}: tab characters in indentation are not allowed in YAML.");
            if (line.TrimStart() is "---" or "...")
            {
                if (lines.Count == 0) continue; // a leading document marker is harmless
                throw new FormatException($"{source}:{i + 1}: multiple YAML documents are not supported.");
            }
            int indent = line.Length - line.TrimStart(' ').Length;
            lines.Add(new Line(i + 1, indent, line.Trim()));
        }
        if (lines.Count == 0) return new LdmYamlMap(1);
        var parser = new BlockParser(lines, source);
        var root = parser.ParseBlock(lines[0].Indent);
        if (parser.Position < lines.Count)
            throw new FormatException($"{source}:{lines[parser.Position].Number}: unexpected indentation.");
        return root as LdmYamlMap ?? throw new FormatException($"{source}: the top level is not a mapping.");
    }

    /// <summary>Removes a <c>#</c> comment that starts outside quotes (at line start or after whitespace).</summary>
    private static string StripComment(string line)
    {
        char quote = '\0';
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                continue;
            }
            if (c is '"' or '\'' && (i == 0 || " \t[{,:-".Contains(line[i - 1]))) quote = c;
            else if (c == '#' && (i == 0 || char.IsWhiteSpace(line[i - 1]))) return line[..i];
        }
        return line;
    }

    private sealed class BlockParser
    {
        private readonly List<Line> _lines;
        private readonly string _source;

        public BlockParser(List<Line> lines, string source) { _lines = lines; _source = source; }

        public int Position { get; private set; }

        private FormatException Error(Line line, string problem) => new($"{_source}:{line.Number}: {problem}");

        public LdmYamlNode ParseBlock(int indent)
        {
            var first = _lines[Position];
            return first.Text.StartsWith("- ", StringComparison.Ordinal) || first.Text == "-"
                ? ParseSequence(indent)
                : ParseMapping(indent);
        }

        private LdmYamlMap ParseMapping(int indent)
        {
            var map = new LdmYamlMap(_lines[Position].Number);
            while (Position < _lines.Count && _lines[Position].Indent == indent)
            {
                var line = _lines[Position];
                if (line.Text.StartsWith("- ", StringComparison.Ordinal))
                    throw Error(line, "a sequence item where a mapping key was expected.");
                var (key, rest) = SplitKey(line);
                Position++;
                map.Add(key, ParseValue(line, rest, indent), _source);
            }
            if (Position < _lines.Count && _lines[Position].Indent > indent)
                throw Error(_lines[Position], "unexpected indentation.");
            return map;
        }

        private LdmYamlList ParseSequence(int indent)
        {
            int startLine = _lines[Position].Number;
            var items = new List<LdmYamlNode>();
            while (Position < _lines.Count && _lines[Position].Indent == indent &&
                   (_lines[Position].Text.StartsWith("- ", StringComparison.Ordinal) || _lines[Position].Text == "-"))
            {
                var line = _lines[Position];
                string rest = line.Text.Length > 1 ? line.Text[2..].Trim() : "";
                if (rest.Length > 0 && FindKeySeparator(rest) >= 0 && rest[0] is not ('[' or '{' or '"' or '\''))
                    throw Error(line, "mappings inside block sequences are not supported in ldm configs.");
                Position++;
                items.Add(ParseValue(line, rest, indent));
            }
            return new LdmYamlList(startLine, items);
        }

        /// <summary>The value after <c>key:</c> (or after <c>- </c>): inline, a flow collection, or a
        /// nested block.</summary>
        private LdmYamlNode ParseValue(Line line, string rest, int indent)
        {
            if (rest.Length > 0)
            {
                if (rest[0] is '&' or '*' or '!' or '|' or '>')
                    throw Error(
                        line, $"YAML feature '{rest[0]}' (anchor, alias, tag or block scalar) is not supported.");
                if (rest[0] is '[' or '{')
                {
                    var text = new StringBuilder(rest);
                    while (!FlowParser.IsBalanced(text.ToString()))
                    {
                        if (Position >= _lines.Count) throw Error(line, "unterminated flow collection.");
                        text.Append(' ').Append(_lines[Position].Text);
                        Position++;
                    }
                    return new FlowParser(text.ToString(), line.Number, _source).ParseDocument();
                }
                return ParseScalar(rest, line);
            }
            // Empty inline value: a nested block follows (more indented, or a sequence at the key's own indent).
            if (Position < _lines.Count)
            {
                var next = _lines[Position];
                if (next.Indent > indent) return ParseBlock(next.Indent);
                if (next.Indent == indent && (next.Text.StartsWith(
                    "- ", StringComparison.Ordinal) || next.Text == "-") &&
                    !line.Text.StartsWith("- ", StringComparison.Ordinal))
                    return ParseSequence(indent);
            }
            return new LdmYamlScalar(line.Number, "", quoted: false);
        }

        private LdmYamlScalar ParseScalar(string text, Line line)
        {
            if (text[0] is '"' or '\'')
            {
                var parser = new FlowParser(text, line.Number, _source);
                var scalar = parser.ParseDocument();
                return (LdmYamlScalar)scalar;
            }
            return new LdmYamlScalar(line.Number, text, quoted: false);
        }

        private (string Key, string Value) SplitKey(Line line)
        {
            int colon = FindKeySeparator(line.Text);
            if (colon <= 0) throw Error(line, $"expected 'key: value', found '{line.Text}'.");
            string key = line.Text[..colon].Trim();
            if (key.Length >= 2 && key[0] is '"' or '\'' && key[^1] == key[0]) key = key[1..^1];
            return (key, line.Text[(colon + 1)..].Trim());
        }
    }

    /// <summary>Index of the first <c>:</c> followed by a space or the line end, outside quotes and brackets;
    /// -1 if none.</summary>
    private static int FindKeySeparator(string text)
    {
        char quote = '\0';
        int depth = 0;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '"' or '\'' && i == 0) quote = c;
            else if (c is '[' or '{') depth++;
            else if (c is ']' or '}') depth--;
            else if (c == ':' && depth == 0 && (i + 1 == text.Length || text[i + 1] == ' ')) return i;
        }
        return -1;
    }

    /// <summary>Recursive-descent reader for one flow value (<c>[..]</c>, <c>{..}</c>, quoted or
    /// plain scalar).</summary>
    private sealed class FlowParser
    {
        private readonly string _text;
        private readonly int _line;
        private readonly string _source;
        private int _pos;

        public FlowParser(string text, int line, string source) { _text = text; _line = line; _source = source; }

        public static bool IsBalanced(string text)
        {
            int depth = 0;
            char quote = '\0';
            foreach (char c in text)
            {
                if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
                if (c is '"' or '\'') quote = c;
                else if (c is '[' or '{') depth++;
                else if (c is ']' or '}') depth--;
            }
            return depth <= 0 && quote == '\0';
        }

        private FormatException Error(string problem) => new($"{_source}:{_line}: {problem} (in '{_text}')");

        public LdmYamlNode ParseDocument()
        {
            var node = ParseNode(inFlow: false);
            SkipSpace();
            if (_pos != _text.Length) throw Error($"unexpected text '{_text[_pos..]}' after the value");
            return node;
        }

        private void SkipSpace()
        {
            while (_pos < _text.Length && char.IsWhiteSpace(_text[_pos])) _pos++;
        }

        private LdmYamlNode ParseNode(bool inFlow)
        {
            SkipSpace();
            if (_pos >= _text.Length) return new LdmYamlScalar(_line, "", quoted: false);
            char c = _text[_pos];
            if (c == '[') return ParseList();
            if (c == '{') return ParseMap();
            if (c is '"' or '\'') return ParseQuoted();
            return ParsePlain(inFlow, stopAtColon: false);
        }

        private LdmYamlList ParseList()
        {
            _pos++; // [
            var items = new List<LdmYamlNode>();
            while (true)
            {
                SkipSpace();
                if (_pos >= _text.Length) throw Error("unterminated '['");
                if (_text[_pos] == ']') { _pos++; return new LdmYamlList(_line, items); }
                items.Add(ParseNode(inFlow: true));
                SkipSpace();
                if (_pos < _text.Length && _text[_pos] == ',') { _pos++; continue; }
                if (_pos < _text.Length && _text[_pos] == ']') { _pos++; return new LdmYamlList(_line, items); }
                throw Error("expected ',' or ']'");
            }
        }

        private LdmYamlMap ParseMap()
        {
            _pos++; // {
            var map = new LdmYamlMap(_line);
            while (true)
            {
                SkipSpace();
                if (_pos >= _text.Length) throw Error("unterminated '{'");
                if (_text[_pos] == '}') { _pos++; return map; }
                var keyNode = _text[_pos] is '"' or '\'' ? ParseQuoted() : ParsePlain(inFlow: true, stopAtColon: true);
                SkipSpace();
                if (_pos >= _text.Length || _text[_pos] != ':') throw Error($"expected ':' after key '{keyNode.Text}'");
                _pos++;
                map.Add(keyNode.Text, ParseNode(inFlow: true), _source);
                SkipSpace();
                if (_pos < _text.Length && _text[_pos] == ',') { _pos++; continue; }
                if (_pos < _text.Length && _text[_pos] == '}') { _pos++; return map; }
                throw Error("expected ',' or '}'");
            }
        }

        private LdmYamlScalar ParseQuoted()
        {
            char quote = _text[_pos++];
            var value = new StringBuilder();
            while (true)
            {
                if (_pos >= _text.Length) throw Error("unterminated quoted string");
                char c = _text[_pos++];
                if (c == quote)
                {
                    if (quote == '\'' && _pos < _text.Length && _text[_pos] == '\'')
                    {
                        value.Append('\''); _pos++; continue;
                    }
                    return new LdmYamlScalar(_line, value.ToString(), quoted: true);
                }
                if (c == '\\' && quote == '"' && _pos < _text.Length)
                {
                    char escaped = _text[_pos++];
                    value.Append(escaped switch
                    {
                        'n' => '\n', 't' => '\t', '\\' => '\\', '"' => '"', '/' => '/',
                        _ => throw Error($"unsupported escape '\\{escaped}'"),
                    });
                    continue;
                }
                value.Append(c);
            }
        }

        private LdmYamlScalar ParsePlain(bool inFlow, bool stopAtColon)
        {
            int start = _pos;
            while (_pos < _text.Length)
            {
                char c = _text[_pos];
                if (inFlow && c is ',' or ']' or '}') break;
                if (stopAtColon && c == ':' && (_pos + 1 == _text.Length || _text[_pos + 1] is ' ' or ',' or '}'))
                    break;
                _pos++;
            }
            return new LdmYamlScalar(_line, _text[start.._pos].Trim(), quoted: false);
        }
    }

    // ---- typed access ----------------------------------------------------------------------------------------------

    /// <summary>Follows a dotted path of mapping keys (<c>model.params.unet_config</c>); null where any step
    /// is absent.</summary>
    public static LdmYamlNode? Get(this LdmYamlMap map, string path)
    {
        LdmYamlNode? node = map;
        foreach (var part in path.Split('.'))
        {
            if (node is not LdmYamlMap current) return null;
            node = current[part];
        }
        return node is LdmYamlScalar { IsNull: true } ? null : node;
    }

    /// <summary>A scalar as text; null if absent.</summary>
    public static string? GetString(this LdmYamlMap map, string path, string source) => map.Get(path) switch
    {
        null => null,
        LdmYamlScalar s => s.Text,
        var other => throw new FormatException($"{source}:{other.Line}: '{path}' should be a single value."),
    };

    /// <summary>An integer scalar; null if absent.</summary>
    public static int? GetInt(this LdmYamlMap map, string path, string source)
    {
        var text = map.GetString(path, source);
        if (text is null) return null;
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new FormatException($"{source}: '{path}' = '{text}' is not an integer.");
    }

    /// <summary>A floating-point scalar (<c>1.0e-4</c>, <c>0.0120</c>); null if absent.</summary>
    public static double? GetDouble(this LdmYamlMap map, string path, string source)
    {
        var text = map.GetString(path, source);
        if (text is null) return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new FormatException($"{source}: '{path}' = '{text}' is not a number.");
    }

    /// <summary>A boolean scalar (<c>true</c>, <c>True</c>, <c>false</c>, ...); null if absent.</summary>
    public static bool? GetBool(this LdmYamlMap map, string path, string source)
    {
        var text = map.GetString(path, source);
        return text switch
        {
            null => null,
            "true" or "True" or "TRUE" => true,
            "false" or "False" or "FALSE" => false,
            _ => throw new FormatException($"{source}: '{path}' = '{text}' is not a boolean."),
        };
    }

    /// <summary>A sequence of integers; null if absent.</summary>
    public static int[]? GetIntList(this LdmYamlMap map, string path, string source) =>
        GetList<int>(
            map, path, source,
            text => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : (int?)null);

    /// <summary>A sequence of booleans; null if absent.</summary>
    public static bool[]? GetBoolList(this LdmYamlMap map, string path, string source) =>
        GetList<bool>(map, path, source, text => text switch
        {
            "true" or "True" or "TRUE" => true,
            "false" or "False" or "FALSE" => false,
            _ => null,
        });

    private static T[]? GetList<T>(LdmYamlMap map, string path, string source, Func<string, T?> parse) where T : struct
    {
        var node = map.Get(path);
        if (node is null) return null;
        if (node is not LdmYamlList list)
            throw new FormatException($"{source}:{node.Line}: '{path}' should be a list.");
        return list.Items.Select(item => item is LdmYamlScalar s && parse(s.Text) is T value
            ? value
            : throw new FormatException(
                $"{source}:{item.Line}: '{path}' has an item that is not a {typeof(T).Name}.")).ToArray();
    }
}
