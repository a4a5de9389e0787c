using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Dpt;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// The DPT-Hybrid config of a single file's <c>depth_model.model.*</c> weights, which come without one: the
/// stable-diffusion-2-depth estimator's config (embedded), with every size the tensor shapes tell read from them
/// (ViT width, layers, MLP width, grid; BiT stem, stage depths and widths; neck and fusion widths; the reassemble
/// resize). What shapes cannot tell follows the released model: 64-wide attention heads, patch 16, GroupNorm(32), and
/// DPT's ViT layers <c>[L/4-1, L/2-1, 3L/4-1, L-1]</c> for the neck.
/// </summary>
public static class DptSingleFileConfig
{
    private const string P = DptKeyMap.Prefix;

    /// <summary>The estimator config and the image processor settings for <paramref name="file"/>.</summary>
    /// <exception cref="InvalidDataException">The file has no complete DPT-Hybrid under
    /// <c>depth_model.model.</c>.</exception>
    public static (DPTConfig Model, DPTImageProcessorConfig Processor) Infer(ITensorFile file)
    {
        long[] Shape(string key) => file.Keys.Contains(P + key) ? file.ShapeOf(P + key)
            : throw new InvalidDataException(
                $"{file.Path}: the depth estimator has no '{P}{key}': it is not a MiDaS DPT-Hybrid.");
        int Count(string prefix) => file.Keys
            .Select(k => k.StartsWith(P + prefix, StringComparison.Ordinal) ? k[(P.Length + prefix.Length)..] : null)
            .Where(rest => rest is not null).Select(rest => int.TryParse(rest!.Split('.')[0], out var n) ? n + 1 : 0)
            .DefaultIfEmpty(0).Max();

        var config = DPTConfig.FromJson(
            KnownModelConfigs.ReadJson("sd2-depth.depth_estimator.json"), "sd2-depth.depth_estimator.json");
        var positions = Shape("pretrained.model.pos_embed"); // [1, 1 + grid², D]
        int hidden = (int)positions[2], grid = (int)Math.Round(Math.Sqrt(positions[1] - 1));
        int layers = Count("pretrained.model.blocks.");
        config.HiddenSize = hidden;
        config.NumHiddenLayers = layers;
        config.NumAttentionHeads = Math.Max(1, hidden / 64);
        config.IntermediateSize = (int)Shape("pretrained.model.blocks.0.mlp.fc1.weight")[0];
        config.ImageSize = grid * config.PatchSize;
        config.BackboneOutIndices = new[] { layers / 4 - 1, layers / 2 - 1, 3 * layers / 4 - 1, layers - 1 };
        config.QkvBias = file.Keys.Contains(P + "pretrained.model.blocks.0.attn.qkv.bias");

        var bit = config.Bit;
        bit.EmbeddingSize = (int)Shape("pretrained.model.patch_embed.backbone.stem.conv.weight")[0];
        int stages = Count("pretrained.model.patch_embed.backbone.stages.");
        bit.Depths = Enumerable.Range(0, stages)
            .Select(s => Count($"pretrained.model.patch_embed.backbone.stages.{s}.blocks."))
            .ToArray();
        bit.HiddenSizes = Enumerable.Range(0, stages)
            .Select(s => (int)Shape($"pretrained.model.patch_embed.backbone.stages.{s}.blocks.0.conv3.weight")[0])
            .ToArray();
        config.BackboneFeatmapShape =
            new[] { 1, (int)Shape("pretrained.model.patch_embed.proj.weight")[1], grid, grid };

        config.NeckHiddenSizes = Enumerable.Range(1, 4)
            .Select(i => (int)Shape($"scratch.layer{i}_rn.weight")[1])
            .ToArray();
        config.FusionHiddenSize = (int)Shape("scratch.layer1_rn.weight")[0];
        config.ReassembleFactors = Enumerable.Range(1, 4).Select(i => ReassembleFactor(file, i)).ToArray();
        config.Validate($"{file.Path} ({P}*)");

        var processor = DPTImageProcessorConfig.FromJson(
            KnownModelConfigs.ReadJson("sd2-depth.feature_extractor.json"), "sd2-depth.feature_extractor.json");
        processor.Size = System.Text.Json.JsonDocument.Parse(
            $"{{\"height\": {config.ImageSize}, \"width\": {config.ImageSize}}}").RootElement.Clone();
        processor.Validate("sd2-depth.feature_extractor.json");
        return (config, processor);
    }

    // MiDaS' act_postprocess{n}.4 is the resize: absent at factor 1, a 3×3 strided convolution for 0.5, a k×k
    // transposed convolution (stride k) for factor k.
    private static double ReassembleFactor(ITensorFile file, int stage)
    {
        if (stage <= 2) return 1;
        var key = $"{P}pretrained.act_postprocess{stage}.4.weight";
        if (!file.Keys.Contains(key)) return 1;
        var kernel = file.ShapeOf(key)[2];
        return kernel == 3 ? 0.5 : kernel;
    }
}
