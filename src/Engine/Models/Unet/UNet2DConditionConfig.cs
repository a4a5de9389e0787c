using System.Globalization;
using System.Text.Json.Serialization;
using PSStableDiffusion.Engine.Models.Common;

namespace PSStableDiffusion.Engine.Models.Unet;

/// <summary>
/// diffusers' <c>unet/config.json</c> for <c>UNet2DConditionModel</c>. Every field the SD 2.x family uses is honoured;
/// <see cref="Validate"/> rejects values of the other fields that the engine does not implement.
/// Defaults are diffusers' defaults.
/// </summary>
public sealed class UNet2DConditionConfig
{
    [JsonPropertyName("sample_size")] public int? SampleSize { get; set; }
    [JsonPropertyName("in_channels")] public int InChannels { get; set; } = 4;
    [JsonPropertyName("out_channels")] public int OutChannels { get; set; } = 4;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; set; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; set; } = true;
    [JsonPropertyName("freq_shift")] public double FreqShift { get; set; }

    [JsonPropertyName("down_block_types")]
    public string[] DownBlockTypes { get; set; } =
        { "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D" };

    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; set; } = "UNetMidBlock2DCrossAttn";

    [JsonPropertyName("up_block_types")]
    public string[] UpBlockTypes { get; set; } =
        { "UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D" };

    [JsonPropertyName("only_cross_attention"), JsonConverter(typeof(ScalarOrArrayConverter<bool>))]
    public bool[] OnlyCrossAttention { get; set; } = { false };

    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; set; } = { 320, 640, 1280, 1280 };

    [JsonPropertyName("layers_per_block"), JsonConverter(typeof(ScalarOrArrayConverter<int>))]
    public int[] LayersPerBlock { get; set; } = { 2 };

    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; set; } = 1;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; set; } = 1.0;
    [JsonPropertyName("dropout")] public double Dropout { get; set; }
    [JsonPropertyName("act_fn")] public string ActFn { get; set; } = "silu";
    [JsonPropertyName("norm_num_groups")] public int? NormNumGroups { get; set; } = 32;
    [JsonPropertyName("norm_eps")] public double NormEps { get; set; } = 1e-5;

    [JsonPropertyName("cross_attention_dim"), JsonConverter(typeof(ScalarOrArrayConverter<int>))]
    public int[] CrossAttentionDim { get; set; } = { 1280 };

    [JsonPropertyName("transformer_layers_per_block"), JsonConverter(typeof(ScalarOrArrayConverter<int>))]
    public int[] TransformerLayersPerBlock { get; set; } = { 1 };

    /// <summary>SD 2.x semantics (diffusers' historical naming): the number of heads per block, not
    /// their width.</summary>
    [JsonPropertyName("attention_head_dim"), JsonConverter(typeof(ScalarOrArrayConverter<int>))]
    public int[] AttentionHeadDim { get; set; } = { 8 };

    /// <summary>Null in SD 2.x; diffusers 0.29 rejects any value, and so do we.</summary>
    [JsonPropertyName("num_attention_heads"), JsonConverter(typeof(ScalarOrArrayConverter<int>))]
    public int[]? NumAttentionHeads { get; set; }

    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; set; }
    [JsonPropertyName("upcast_attention")] public bool UpcastAttention { get; set; }

    /// <summary>x4 upscaler: the noise level is passed as a class label into an embedding table of this size.</summary>
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; set; }

    // Fields the SD 2.x family leaves at their defaults; other values are rejected by Validate().
    [JsonPropertyName("dual_cross_attention")] public bool DualCrossAttention { get; set; }
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; set; }
    [JsonPropertyName("class_embeddings_concat")] public bool ClassEmbeddingsConcat { get; set; }
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; set; }
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; set; }
    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; set; }
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; set; }
    [JsonPropertyName("projection_class_embeddings_input_dim")]
    public int? ProjectionClassEmbeddingsInputDim { get; set; }
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; set; } = "default";
    [JsonPropertyName("resnet_skip_time_act")] public bool ResnetSkipTimeAct { get; set; }
    [JsonPropertyName("resnet_out_scale_factor")] public double ResnetOutScaleFactor { get; set; } = 1.0;
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; set; } = "positional";
    [JsonPropertyName("time_embedding_dim")] public int? TimeEmbeddingDim { get; set; }
    [JsonPropertyName("time_embedding_act_fn")] public string? TimeEmbeddingActFn { get; set; }
    [JsonPropertyName("timestep_post_act")] public string? TimestepPostAct { get; set; }
    [JsonPropertyName("time_cond_proj_dim")] public int? TimeCondProjDim { get; set; }
    [JsonPropertyName("conv_in_kernel")] public int ConvInKernel { get; set; } = 3;
    [JsonPropertyName("conv_out_kernel")] public int ConvOutKernel { get; set; } = 3;
    [JsonPropertyName("attention_type")] public string AttentionType { get; set; } = "default";
    [JsonPropertyName("cross_attention_norm")] public string? CrossAttentionNorm { get; set; }
    [JsonPropertyName("reverse_transformer_layers_per_block")]
    public System.Text.Json.JsonElement? ReverseTransformerLayersPerBlock { get; set; }

    /// <summary>Reads a <c>config.json</c> and validates it.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON.</exception>
    /// <exception cref="NotSupportedException">A field has a value the engine does not implement.</exception>
    public static UNet2DConditionConfig FromFile(string path)
    {
        var config = ConfigJson.Load<UNet2DConditionConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>Parses config JSON text and validates it.</summary>
    public static UNet2DConditionConfig FromJson(string json, string source = "unet config.json")
    {
        var config = ConfigJson.Parse<UNet2DConditionConfig>(json, source);
        config.Validate(source);
        return config;
    }

    /// <summary>Throws <see cref="NotSupportedException"/> naming the first field whose value the engine does not
    /// implement.</summary>
    public void Validate(string source = "unet config.json")
    {
        void Reject(string field, object? value, string expected) =>
            throw new NotSupportedException(
                $"{source}: '{field}' = {Format(value)} is not supported (expected {expected}).");

        var blocks = BlockOutChannels.Length;
        if (blocks == 0) Reject("block_out_channels", BlockOutChannels, "at least one entry");
        if (DownBlockTypes.Length != blocks)
            Reject("down_block_types", DownBlockTypes, $"{blocks} entries, one per block_out_channels");
        if (UpBlockTypes.Length != blocks)
            Reject("up_block_types", UpBlockTypes, $"{blocks} entries, one per block_out_channels");
        foreach (var type in DownBlockTypes)
            if (type is not ("CrossAttnDownBlock2D" or "DownBlock2D"))
                Reject("down_block_types", type, "CrossAttnDownBlock2D or DownBlock2D");
        foreach (var type in UpBlockTypes)
            if (type is not ("CrossAttnUpBlock2D" or "UpBlock2D"))
                Reject("up_block_types", type, "CrossAttnUpBlock2D or UpBlock2D");
        if (MidBlockType != "UNetMidBlock2DCrossAttn")
            Reject("mid_block_type", MidBlockType, "\"UNetMidBlock2DCrossAttn\"");
        if (NumAttentionHeads is not null)
            Reject(
                "num_attention_heads", NumAttentionHeads, "null (SD 2.x gives the head count in attention_head_dim)");
        if (NormNumGroups is null) Reject("norm_num_groups", null, "a group count");
        foreach (var (field, values) in new[]
                 {
                     ("layers_per_block", LayersPerBlock), ("cross_attention_dim", CrossAttentionDim),
                     ("transformer_layers_per_block", TransformerLayersPerBlock),
                     ("attention_head_dim", AttentionHeadDim),
                 })
        {
            if (values.Length != 1 && values.Length != blocks) Reject(field, values, $"one value or {blocks} values");
            if (values.Any(v => v <= 0)) Reject(field, values, "positive values");
        }
        if (OnlyCrossAttention.Length != 1 && OnlyCrossAttention.Length != blocks)
            Reject("only_cross_attention", OnlyCrossAttention, $"one value or {blocks} values");
        var heads = ConfigJson.PerBlock(AttentionHeadDim, blocks, "attention_head_dim");
        for (var i = 0; i < blocks; i++)
            if (BlockOutChannels[i] % heads[i] != 0)
                Reject(
                    "attention_head_dim", AttentionHeadDim,
                    $"head counts that divide block_out_channels ({BlockOutChannels[i]} at block {i})");
        Activations.Get(ActFn, "act_fn");
        if (DualCrossAttention) Reject("dual_cross_attention", true, "false");
        if (ClassEmbedType is not null) Reject("class_embed_type", ClassEmbedType, "null");
        if (ClassEmbeddingsConcat) Reject("class_embeddings_concat", true, "false");
        if (AdditionEmbedType is not null) Reject("addition_embed_type", AdditionEmbedType, "null");
        if (AdditionTimeEmbedDim is not null) Reject("addition_time_embed_dim", AdditionTimeEmbedDim, "null");
        if (EncoderHidDim is not null) Reject("encoder_hid_dim", EncoderHidDim, "null");
        if (EncoderHidDimType is not null) Reject("encoder_hid_dim_type", EncoderHidDimType, "null");
        if (ProjectionClassEmbeddingsInputDim is not null)
            Reject("projection_class_embeddings_input_dim", ProjectionClassEmbeddingsInputDim, "null");
        if (ResnetTimeScaleShift != "default") Reject("resnet_time_scale_shift", ResnetTimeScaleShift, "\"default\"");
        if (ResnetSkipTimeAct) Reject("resnet_skip_time_act", true, "false");
        if (ResnetOutScaleFactor != 1.0) Reject("resnet_out_scale_factor", ResnetOutScaleFactor, "1.0");
        if (TimeEmbeddingType != "positional") Reject("time_embedding_type", TimeEmbeddingType, "\"positional\"");
        if (TimeEmbeddingDim is not null) Reject("time_embedding_dim", TimeEmbeddingDim, "null");
        if (TimeEmbeddingActFn is not null) Reject("time_embedding_act_fn", TimeEmbeddingActFn, "null");
        if (TimestepPostAct is not null) Reject("timestep_post_act", TimestepPostAct, "null");
        if (TimeCondProjDim is not null) Reject("time_cond_proj_dim", TimeCondProjDim, "null");
        if (ConvInKernel != 3) Reject("conv_in_kernel", ConvInKernel, "3");
        if (ConvOutKernel != 3) Reject("conv_out_kernel", ConvOutKernel, "3");
        if (AttentionType != "default") Reject("attention_type", AttentionType, "\"default\"");
        if (CrossAttentionNorm is not null) Reject("cross_attention_norm", CrossAttentionNorm, "null");
        if (ReverseTransformerLayersPerBlock is { ValueKind: not System.Text.Json.JsonValueKind.Null } reverse)
            Reject("reverse_transformer_layers_per_block", reverse.GetRawText(), "null");
    }

    private static string Format(object? value) => value switch
    {
        null => "null",
        string s => $"\"{s}\"",
        bool b => b ? "true" : "false",
        System.Collections.IEnumerable list => "[" + string.Join(", ", list.Cast<object?>().Select(Format)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
