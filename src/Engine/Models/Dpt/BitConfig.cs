using System.Globalization;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>BitConfig</c>, the <c>backbone_config</c> of a DPT-Hybrid <c>config.json</c>. Defaults are the
/// ones <c>DPTConfig</c> gives a hybrid model whose file has no backbone config (BiT-R50 stages [3,
/// 4, 9], SAME padding).
/// </summary>
public sealed class BitConfig
{
    [JsonPropertyName("num_channels")] public int NumChannels { get; set; } = 3;
    [JsonPropertyName("embedding_size")] public int EmbeddingSize { get; set; } = 64;
    [JsonPropertyName("hidden_sizes")] public int[] HiddenSizes { get; set; } = { 256, 512, 1024, 2048 };
    [JsonPropertyName("depths")] public int[] Depths { get; set; } = { 3, 4, 9 };
    [JsonPropertyName("layer_type")] public string LayerType { get; set; } = "bottleneck";
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; set; } = "relu";
    [JsonPropertyName("global_padding")] public string? GlobalPadding { get; set; } = "SAME";
    [JsonPropertyName("num_groups")] public int NumGroups { get; set; } = 32;
    [JsonPropertyName("embedding_dynamic_padding")] public bool EmbeddingDynamicPadding { get; set; } = true;
    [JsonPropertyName("output_stride")] public int OutputStride { get; set; } = 32;
    [JsonPropertyName("width_factor")] public int WidthFactor { get; set; } = 1;
    [JsonPropertyName("out_features")] public string[]? OutFeatures { get; set; } = { "stage1", "stage2", "stage3" };

    /// <summary>TF "SAME" padding (dynamic where the stride is above 1), as <c>global_padding:
    /// "same"</c> asks.</summary>
    [JsonIgnore] public bool SamePadding => string.Equals(GlobalPadding, "same", StringComparison.OrdinalIgnoreCase);

    /// <summary>Output channels of stage <paramref name="stage"/>: transformers' <c>make_div(hidden_size ·
    /// width_factor)</c>.</summary>
    public int StageChannels(int stage) => MakeDivisible(HiddenSizes[stage] * WidthFactor);

    /// <summary>transformers' <c>make_div</c>: rounds to a multiple of 8, never more than 10 % down.</summary>
    public static int MakeDivisible(double value, int divisor = 8)
    {
        int rounded = Math.Max(divisor, (int)(value + divisor / 2.0) / divisor * divisor);
        return rounded < 0.9 * value ? rounded + divisor : rounded;
    }

    /// <summary>Throws <see cref="NotSupportedException"/> naming the first field the engine does not
    /// implement.</summary>
    public void Validate(string source)
    {
        void Reject(string field, string value, string expected) =>
            throw new NotSupportedException(
                $"{source}: 'backbone_config.{field}' = {value} is not supported (expected {expected}).");
        if (LayerType != "bottleneck") Reject("layer_type", $"\"{LayerType}\"", "\"bottleneck\" (the DPT-Hybrid BiT)");
        if (HiddenAct != "relu") Reject("hidden_act", $"\"{HiddenAct}\"", "\"relu\"");
        if (GlobalPadding is not null && !SamePadding)
            Reject("global_padding", $"\"{GlobalPadding}\"", "\"same\" or null");
        if (Depths.Length == 0 || Depths.Any(d => d <= 0))
            Reject("depths", $"[{string.Join(", ", Depths)}]", "positive stage depths");
        if (HiddenSizes.Length < Depths.Length)
            Reject("hidden_sizes", $"{HiddenSizes.Length} entries", $"at least {Depths.Length}, one per stage");
        if (NumGroups <= 0) Reject("num_groups", NumGroups.ToString(CultureInfo.InvariantCulture), "a positive count");
        var expected = Enumerable.Range(1, Depths.Length).Select(i => $"stage{i}").ToArray();
        if (OutFeatures is not null && !OutFeatures.SequenceEqual(expected))
            Reject(
                "out_features", $"[{string.Join(", ", OutFeatures)}]",
                $"[{string.Join(", ", expected)}]: DPT-Hybrid takes every stage");
        if (Depths.Length != 3)
            Reject(
                "depths", $"{Depths.Length} stages",
                "3 (DPT-Hybrid takes stages 1 and 2 as features and stage 3 as tokens)");
        // Stage strides 1, 2, 2 after the stem's 4: the dilation branch (output_stride) never triggers below 32.
        if (OutputStride < 16)
            Reject(
                "output_stride", OutputStride.ToString(CultureInfo.InvariantCulture),
                "16 or more (dilated stages are not implemented)");
    }
}
