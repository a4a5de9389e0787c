using System.Globalization;
using System.Text.Json.Serialization;
using PSStableDiffusion.Engine.Models.Common;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTConfig</c> (<c>depth_estimator/config.json</c>) for <c>DPTForDepthEstimation</c> with
/// <c>is_hybrid: true</c> (MiDaS DPT-Hybrid, as stable-diffusion-2-depth ships it). Defaults are transformers'.
/// </summary>
public sealed class DPTConfig
{
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; set; } = 768;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; set; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; set; } = 12;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; set; } = 3072;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; set; } = "gelu";
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; set; } = 1e-12;
    [JsonPropertyName("image_size")] public int ImageSize { get; set; } = 384;
    [JsonPropertyName("patch_size")] public int PatchSize { get; set; } = 16;
    [JsonPropertyName("num_channels")] public int NumChannels { get; set; } = 3;
    [JsonPropertyName("is_hybrid")] public bool IsHybrid { get; set; }
    [JsonPropertyName("qkv_bias")] public bool QkvBias { get; set; } = true;
    [JsonPropertyName("backbone_out_indices")] public int[] BackboneOutIndices { get; set; } = { 2, 5, 8, 11 };
    [JsonPropertyName("readout_type")] public string ReadoutType { get; set; } = "project";
    [JsonPropertyName("reassemble_factors")] public double[] ReassembleFactors { get; set; } = { 4, 2, 1, 0.5 };
    [JsonPropertyName("neck_hidden_sizes")] public int[] NeckHiddenSizes { get; set; } = { 96, 192, 384, 768 };
    [JsonPropertyName("fusion_hidden_size")] public int FusionHiddenSize { get; set; } = 256;
    [JsonPropertyName("head_in_index")] public int HeadInIndex { get; set; } = -1;
    [JsonPropertyName("use_batch_norm_in_fusion_residual")] public bool UseBatchNormInFusionResidual { get; set; }
    [JsonPropertyName("use_bias_in_fusion_residual")] public bool? UseBiasInFusionResidual { get; set; }
    [JsonPropertyName("add_projection")] public bool AddProjection { get; set; }
    [JsonPropertyName("backbone_featmap_shape")] public int[] BackboneFeatmapShape { get; set; } = { 1, 1024, 24, 24 };
    [JsonPropertyName("neck_ignore_stages")] public int[] NeckIgnoreStages { get; set; } = { 0, 1 };
    [JsonPropertyName("backbone_config")] public BitConfig? BackboneConfig { get; set; }

    /// <summary>The BiT backbone's config (transformers' hybrid default when the file gives none).</summary>
    [JsonIgnore] public BitConfig Bit => BackboneConfig ??= new BitConfig();

    /// <summary>Channels of the BiT feature map the ViT embeds (<c>backbone_featmap_shape[1]</c>).</summary>
    [JsonIgnore] public int BackboneFeatureChannels => BackboneFeatmapShape[1];

    /// <summary>Tokens per side of the ViT grid: <c>image_size / patch_size</c>.</summary>
    [JsonIgnore] public int GridSize => ImageSize / PatchSize;

    /// <summary>The ViT layers whose outputs feed the neck after the two BiT stages (transformers keeps
    /// <c>backbone_out_indices[2:]</c> in layer order).</summary>
    [JsonIgnore] public int[] VitOutputLayers => BackboneOutIndices.Skip(2).Distinct().Order().ToArray();

    /// <summary>The residual units' convolutions have a bias unless batch norm follows them
    /// (transformers' rule).</summary>
    [JsonIgnore] public bool FusionResidualBias => UseBiasInFusionResidual ?? !UseBatchNormInFusionResidual;

    /// <summary>Reads a <c>config.json</c> and validates it.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON.</exception>
    /// <exception cref="NotSupportedException">A field has a value the engine does not implement.</exception>
    public static DPTConfig FromFile(string path)
    {
        var config = ConfigJson.Load<DPTConfig>(path);
        config.Validate(path);
        return config;
    }

    /// <summary>Parses config JSON text and validates it.</summary>
    public static DPTConfig FromJson(string json, string source = "depth_estimator config.json")
    {
        var config = ConfigJson.Parse<DPTConfig>(json, source);
        config.Validate(source);
        return config;
    }

    /// <summary>Throws <see cref="NotSupportedException"/> naming the first field whose value the engine does not
    /// implement.</summary>
    public void Validate(string source = "depth_estimator config.json")
    {
        static string Text(double v) => v.ToString(CultureInfo.InvariantCulture);
        void Reject(string field, string value, string expected) =>
            throw new NotSupportedException($"{source}: '{field}' = {value} is not supported (expected {expected}).");

        if (!IsHybrid)
            Reject(
                "is_hybrid", "false",
                "true: the engine implements DPT-Hybrid (MiDaS v3 hybrid), the stable-diffusion-2-depth estimator");
        if (ReadoutType != "project") Reject("readout_type", $"\"{ReadoutType}\"", "\"project\"");
        if (HiddenAct != "gelu") Reject("hidden_act", $"\"{HiddenAct}\"", "\"gelu\"");
        if (HiddenSize <= 0 || NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0)
            Reject("num_attention_heads", Text(NumAttentionHeads), $"a positive divisor of hidden_size {HiddenSize}");
        if (NumHiddenLayers <= 0) Reject("num_hidden_layers", Text(NumHiddenLayers), "a positive count");
        if (PatchSize <= 0 || ImageSize <= 0 || ImageSize % PatchSize != 0)
            Reject("image_size", Text(ImageSize), $"a positive multiple of patch_size {PatchSize}");
        if (NumChannels != 3) Reject("num_channels", Text(NumChannels), "3");
        if (NeckHiddenSizes.Length != 4)
            Reject("neck_hidden_sizes", $"{NeckHiddenSizes.Length} entries", "4 (two BiT stages and two ViT layers)");
        if (ReassembleFactors.Length != NeckHiddenSizes.Length)
            Reject("reassemble_factors", $"{ReassembleFactors.Length} entries", "one per neck_hidden_sizes");
        if (!NeckIgnoreStages.SequenceEqual(new[] { 0, 1 }))
            Reject("neck_ignore_stages", $"[{string.Join(", ", NeckIgnoreStages)}]", "[0, 1]");
        var vitLayers = VitOutputLayers;
        if (BackboneOutIndices.Length != 4
            || vitLayers.Length != 2 || vitLayers.Any(i => i < 0 || i >= NumHiddenLayers))
            Reject(
                "backbone_out_indices", $"[{string.Join(", ", BackboneOutIndices)}]",
                $"4 entries whose last two are distinct ViT layers below {NumHiddenLayers}");
        foreach (var factor in ReassembleFactors.Skip(2))
            if (factor != 1 && factor != 0.5 && !(factor > 1 && factor == Math.Floor(factor)))
                Reject("reassemble_factors", Text(factor), "1, 0.5 or a whole number above 1");
        if (FusionHiddenSize < 2 || FusionHiddenSize % 2 != 0)
            Reject("fusion_hidden_size", Text(FusionHiddenSize), "a positive even width");
        if (HeadInIndex != -1 && HeadInIndex != 3)
            Reject("head_in_index", Text(HeadInIndex), "-1 (the last fusion output)");
        if (UseBatchNormInFusionResidual)
            Reject("use_batch_norm_in_fusion_residual", "true", "false (the depth estimator has no batch norm)");
        if (AddProjection) Reject("add_projection", "true", "false");
        if (BackboneFeatmapShape.Length != 4 || BackboneFeatmapShape[1] <= 0)
            Reject("backbone_featmap_shape", $"[{string.Join(", ", BackboneFeatmapShape)}]", "[1, channels, h, w]");
        Bit.Validate(source);
    }
}
