using System.Text.Json;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>Shared helpers for reading model <c>config.json</c> files.</summary>
public static class ConfigJson
{
    internal static readonly JsonSerializerOptions Options = new()
    {
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    /// <summary>Parses <paramref name="json"/> into <typeparamref name="T"/>; <paramref name="source"/> names the file
    /// in errors.</summary>
    /// <exception cref="InvalidDataException">The JSON is malformed or has a field of the wrong type.</exception>
    public static T Parse<T>(string json, string source) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize<T>(json, Options)
                ?? throw new InvalidDataException($"{source}: the config is empty (null).");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: invalid config ({e.Message})", e);
        }
    }

    /// <summary>Reads and parses a config file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static T Load<T>(string path) where T : class
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Config file not found: {path}", path);
        return Parse<T>(File.ReadAllText(path), path);
    }

    /// <summary>Broadcasts a per-block setting given as one value or one value per block.</summary>
    /// <exception cref="NotSupportedException">The list length differs from the number of blocks.</exception>
    internal static T[] PerBlock<T>(T[] values, int blocks, string field)
    {
        if (values.Length == 1) return Enumerable.Repeat(values[0], blocks).ToArray();
        if (values.Length != blocks)
            throw new NotSupportedException(
                $"config.json: '{field}' has {values.Length} entries, expected 1 or {blocks} (one per down block).");
        return values;
    }
}
