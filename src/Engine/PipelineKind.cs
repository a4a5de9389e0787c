using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine;

/// <summary>Which pipeline made an image.</summary>
[JsonConverter(typeof(PipelineKindJsonConverter))]
public enum PipelineKind
{
    Txt2Img,
    Img2Img,
    Inpaint,
    Depth2Img,
    Upscale,
}
