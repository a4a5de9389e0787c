using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PSStableDiffusion.Engine.Models.Common;

namespace PSStableDiffusion.Engine.Models.Vae;

/// <summary>diffusers' <c>vae/config.json</c> for <c>AutoencoderKL</c>. Defaults are diffusers' defaults.</summary>
public sealed class AutoencoderKLConfig
{
    [JsonPropertyName("in_channels")] public int InChannels { get; set; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; set; } = 3;
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; set; } = { "DownEncoderBlock2D" };
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; set; } = { "UpDecoderBlock2D" };
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; set; } = { 64 };
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; set; } = 1;
    [JsonPropertyName("act_fn")] public string ActFn { get; set; } = "silu";
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; set; } = 4;
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; set; } = 32;
    [JsonPropertyName("sample_size")] public int SampleSize { get; set; } = 32;

    /// <summary>Latents are multiplied by this after encoding and divided by it before decoding (0.18215 for SD,
    /// 0.08333 for the x4 upscaler).</summary>
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; set; } = 0.18215;

    [JsonPropertyName("shift_factor")] public double? ShiftFactor { get; set; }
    [JsonPropertyName("latents_mean")] public JsonElement? LatentsMean { get; set; }
    [JsonPropertyName("latents_std")] public JsonElement? LatentsStd { get; set; }

    /// <summary>Pipelines run this VAE in float32 even when the UNet runs in half precision.</summary>
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; set; } = true;

    [JsonPropertyName("use_quant_conv")] public bool UseQuantConv { get; set; } = true;
    [JsonPropertyName("use_post_quant_conv")] public bool UsePostQuantConv { get; set; } = true;
    [JsonPropertyName("mid_block_add_attention")] public bool MidBlockAddAttention { get; set; } = true;

    /// <summary>Spatial downscaling of the latents: 2^(levels-1) (8 for SD, 4 for the x4 upscaler).</summary>
    [JsonIgnore] public int DownscaleFactor => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Reads a <c>config.json</c> and validates it.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON.</exception>
    /// <exception cref="NotSupportedException">A field has a value the engine does not implement.</exception>
    public static AutoencoderKLConfig FromFile(string path)
    {
        var config = ConfigJson.Load<AutoencoderKLConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>Parses config JSON text and validates it.</summary>
    public static AutoencoderKLConfig FromJson(string json, string source = "vae config.json")
    {
        var config = ConfigJson.Parse<AutoencoderKLConfig>(json, source);
        config.Validate(source);
        return config;
    }

    /// <summary>Throws <see cref="NotSupportedException"/> naming the first field whose value the engine does not
    /// implement.</summary>
    public void Validate(string source = "vae config.json")
    {
        void Reject(string field, string value, string expected) =>
            throw new NotSupportedException($"{source}: '{field}' = {value} is not supported (expected {expected}).");

        var blocks = BlockOutChannels.Length;
        if (blocks == 0) Reject("block_out_channels", "[]", "at least one entry");
        if (DownBlockTypes.Length != blocks)
            Reject("down_block_types", $"{DownBlockTypes.Length} entries", $"{blocks}, one per block_out_channels");
        if (UpBlockTypes.Length != blocks)
            Reject("up_block_types", $"{UpBlockTypes.Length} entries", $"{blocks}, one per block_out_channels");
        foreach (var type in DownBlockTypes)
            if (type != "DownEncoderBlock2D") Reject("down_block_types", $"\"{type}\"", "\"DownEncoderBlock2D\"");
        foreach (var type in UpBlockTypes)
            if (type != "UpDecoderBlock2D") Reject("up_block_types", $"\"{type}\"", "\"UpDecoderBlock2D\"");
        if (LayersPerBlock <= 0)
            Reject("layers_per_block", LayersPerBlock.ToString(CultureInfo.InvariantCulture), "a positive count");
        Activations.Get(ActFn, "act_fn");
        if (LatentsMean is { ValueKind: not JsonValueKind.Null } mean)
            Reject("latents_mean", mean.GetRawText(), "null");
        if (LatentsStd is { ValueKind: not JsonValueKind.Null } std) Reject("latents_std", std.GetRawText(), "null");
    }
}
