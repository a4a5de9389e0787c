using System.Text.Json;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// Reads a diffusers config field that may be a single value or a list (e.g. <c>attention_head_dim: 8</c> or
/// <c>[5, 10, 20, 20]</c>, <c>only_cross_attention: false</c> or <c>[true, true, false]</c>). A single value becomes a
/// one-element array; the model broadcasts it to the number of blocks.
/// </summary>
public sealed class ScalarOrArrayConverter<T> : JsonConverter<T[]>
{
    public override T[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Null) return null;
        if (reader.TokenType == JsonTokenType.StartArray)
            return JsonSerializer.Deserialize<T[]>(ref reader, options);
        return new[] { JsonSerializer.Deserialize<T>(ref reader, options)! };
    }

    public override void Write(Utf8JsonWriter writer, T[] value, JsonSerializerOptions options)
    {
        if (value.Length == 1) JsonSerializer.Serialize(writer, value[0], options);
        else JsonSerializer.Serialize(writer, value, options);
    }
}
