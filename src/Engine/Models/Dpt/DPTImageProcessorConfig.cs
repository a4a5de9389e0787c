using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Models.Common;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTImageProcessor</c> settings (<c>feature_extractor/preprocessor_config.json</c>; the older
/// <c>DPTFeatureExtractor</c> files have the same fields). Defaults are transformers'.
/// </summary>
public sealed class DPTImageProcessorConfig
{
    [JsonPropertyName("do_resize")] public bool DoResize { get; set; } = true;
    /// <summary>A number (square) or <c>{"height": h, "width": w}</c>.</summary>
    [JsonPropertyName("size")] public JsonElement? Size { get; set; }
    [JsonPropertyName("keep_aspect_ratio")] public bool KeepAspectRatio { get; set; }
    [JsonPropertyName("ensure_multiple_of")] public int EnsureMultipleOf { get; set; } = 1;
    /// <summary>PIL's filter code: 0 nearest, 1 Lanczos, 2 bilinear, 3 bicubic.</summary>
    [JsonPropertyName("resample")] public int Resample { get; set; } = 3;
    [JsonPropertyName("do_rescale")] public bool DoRescale { get; set; } = true;
    [JsonPropertyName("rescale_factor")] public double RescaleFactor { get; set; } = 1 / 255.0;
    [JsonPropertyName("do_normalize")] public bool DoNormalize { get; set; } = true;
    [JsonPropertyName("image_mean")] public double[] ImageMean { get; set; } = { 0.5, 0.5, 0.5 };
    [JsonPropertyName("image_std")] public double[] ImageStd { get; set; } = { 0.5, 0.5, 0.5 };
    [JsonPropertyName("do_pad")] public bool DoPad { get; set; }

    /// <summary>The target size (height, width) before aspect and multiple constraints; 384 square
    /// by default.</summary>
    [JsonIgnore] public (int Height, int Width) TargetSize { get; private set; } = (384, 384);

    /// <summary>The Pillow filter <see cref="Resample"/> names.</summary>
    [JsonIgnore] public ResizeFilter Filter => Resample switch
    {
        0 => ResizeFilter.Nearest,
        1 => ResizeFilter.Lanczos,
        2 => ResizeFilter.Bilinear,
        _ => ResizeFilter.Bicubic,
    };

    /// <summary>Reads and validates a <c>preprocessor_config.json</c>.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON.</exception>
    /// <exception cref="NotSupportedException">A field has a value the engine does not implement.</exception>
    public static DPTImageProcessorConfig FromFile(string path)
    {
        var config = ConfigJson.Load<DPTImageProcessorConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>Parses config JSON text and validates it.</summary>
    public static DPTImageProcessorConfig FromJson(string json, string source = "preprocessor_config.json")
    {
        var config = ConfigJson.Parse<DPTImageProcessorConfig>(json, source);
        config.Validate(source);
        return config;
    }

    /// <summary>Checks the fields and works out <see cref="TargetSize"/>.</summary>
    public void Validate(string source = "preprocessor_config.json")
    {
        void Reject(string field, string value, string expected) =>
            throw new NotSupportedException($"{source}: '{field}' = {value} is not supported (expected {expected}).");
        TargetSize = ReadSize(Size, source);
        if (TargetSize.Height <= 0 || TargetSize.Width <= 0)
            Reject("size", Size?.GetRawText() ?? "", "positive height and width");
        if (EnsureMultipleOf <= 0)
            Reject(
                "ensure_multiple_of", EnsureMultipleOf.ToString(CultureInfo.InvariantCulture),
                "a positive whole number");
        if (Resample is < 0 or > 3)
            Reject(
                "resample", Resample.ToString(CultureInfo.InvariantCulture),
                "0 (nearest), 1 (Lanczos), 2 (bilinear) or 3 (bicubic)");
        if (DoPad) Reject("do_pad", "true", "false");
        if (ImageMean.Length != 3) Reject("image_mean", $"{ImageMean.Length} values", "3, one per RGB channel");
        if (ImageStd.Length != 3 || ImageStd.Any(s => s == 0))
            Reject("image_std", $"[{string.Join(", ", ImageStd)}]", "3 non-zero values");
    }

    private static (int Height, int Width) ReadSize(JsonElement? size, string source)
    {
        if (size is not { } element || element.ValueKind == JsonValueKind.Null) return (384, 384);
        try
        {
            if (element.ValueKind == JsonValueKind.Number) return (element.GetInt32(), element.GetInt32());
            if (element.ValueKind == JsonValueKind.Object
                && element.TryGetProperty("height", out var h) && element.TryGetProperty("width", out var w))
                return (h.GetInt32(), w.GetInt32());
        }
        catch (FormatException) { }
        throw new NotSupportedException(
            $"{source}: 'size' = {element.GetRawText()} is not supported " +
            $"(expected a number or {{\"height\": h, \"width\": w}}).");
    }
}
