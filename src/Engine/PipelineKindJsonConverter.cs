using System.Text.Json;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine;

/// <summary>Writes <see cref="PipelineKind"/> as its lower-case name (txt2img, img2img, inpaint,
/// depth2img, upscale).</summary>
public sealed class PipelineKindJsonConverter : JsonConverter<PipelineKind>
{
    public override PipelineKind Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString();
        if (text is not null
            && Enum.TryParse<PipelineKind>(text, ignoreCase: true, out var kind) && Enum.IsDefined(kind))
            return kind;
        throw new JsonException($"Unknown pipeline kind '{text}' (txt2img, img2img, inpaint, depth2img or upscale).");
    }

    public override void Write(Utf8JsonWriter writer, PipelineKind value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString().ToLowerInvariant());
}
