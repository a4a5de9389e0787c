using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Dpt;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// The explicit map between the MiDaS (timm) names of the DPT-Hybrid weights that <c>512-depth-ema.ckpt</c> bundles
/// under <c>depth_model.model.</c> and transformers' <c>DPTForDepthEstimation</c> keys, as transformers'
/// <c>convert_dpt_hybrid_to_pytorch.py</c> maps them: enumerated from the architecture key for key, each with its shape
/// (timm's fused <c>attn.qkv</c> splits into query, key and value). The timm classifier
/// (<c>pretrained.model.head.*</c>), which the converter drops, is the only known key not loaded; any
/// other key is an error.
/// </summary>
public sealed class DptKeyMap
{
    /// <summary>Where the estimator's weights sit in an SD 2 depth single file.</summary>
    public const string Prefix = "depth_model.model.";

    private const string Bit = "dpt.embeddings.backbone.bit.";
    private const string TimmBit = "pretrained.model.patch_embed.backbone.";
    private readonly Dictionary<string, List<DptKeyMapping>> _bySource = new(StringComparer.Ordinal);

    /// <summary>Builds the map for <paramref name="config"/>; <paramref name="moduleShapes"/> gives every module
    /// tensor's shape.</summary>
    public DptKeyMap(DPTConfig config, IReadOnlyDictionary<string, long[]> moduleShapes)
    {
        void Map(string source, string module, int chunk = 0, int chunks = 1)
        {
            if (!moduleShapes.TryGetValue(module, out var shape))
                throw new InvalidOperationException(
                    $"The DPT architecture has no tensor '{module}' (mapped from '{source}').");
            if (!_bySource.TryGetValue(Prefix + source, out var list))
                _bySource[Prefix + source] = list = new List<DptKeyMapping>();
            list.Add(new DptKeyMapping(Prefix + source, module, shape, chunk, chunks));
        }
        void MapParameters(string source, string module, params string[] names)
        {
            foreach (var name in names) Map($"{source}.{name}", $"{module}.{name}");
        }

        MapParameters(TimmBit + "stem.conv", Bit + "embedder.convolution", "weight");
        MapParameters(TimmBit + "stem.norm", Bit + "embedder.norm", "weight", "bias");
        for (int stage = 0; stage < config.Bit.Depths.Length; stage++)
        {
            for (int block = 0; block < config.Bit.Depths[stage]; block++)
            {
                string source = $"{TimmBit}stages.{stage}.blocks.{block}",
                module = $"{Bit}encoder.stages.{stage}.layers.{block}";
                if (block == 0)
                {
                    MapParameters(source + ".downsample.conv", module + ".downsample.conv", "weight");
                    MapParameters(source + ".downsample.norm", module + ".downsample.norm", "weight", "bias");
                }
                for (int i = 1; i <= 3; i++)
                {
                    MapParameters($"{source}.conv{i}", $"{module}.conv{i}", "weight");
                    MapParameters($"{source}.norm{i}", $"{module}.norm{i}", "weight", "bias");
                }
            }
        }
        MapParameters("pretrained.model.patch_embed.proj", "dpt.embeddings.projection", "weight", "bias");
        Map("pretrained.model.cls_token", "dpt.embeddings.cls_token");
        Map("pretrained.model.pos_embed", "dpt.embeddings.position_embeddings");
        for (int layer = 0; layer < config.NumHiddenLayers; layer++) MapVitLayer(config, layer, Map, MapParameters);
        MapParameters("pretrained.model.norm", "dpt.layernorm", "weight", "bias");
        MapNeckAndHead(config, Map, MapParameters);
    }

    private static void MapVitLayer(
        DPTConfig config, int layer, Action<string, string, int, int> map,
        Action<string, string, string[]> mapParameters)
    {
        string source = $"pretrained.model.blocks.{layer}", module = $"dpt.encoder.layer.{layer}";
        mapParameters(source + ".norm1", module + ".layernorm_before", new[] { "weight", "bias" });
        mapParameters(source + ".norm2", module + ".layernorm_after", new[] { "weight", "bias" });
        var projections = new[] { "query", "key", "value" };
        for (int i = 0; i < 3; i++)
        {
            map(source + ".attn.qkv.weight", $"{module}.attention.attention.{projections[i]}.weight", i, 3);
            if (config.QkvBias)
                map(source + ".attn.qkv.bias", $"{module}.attention.attention.{projections[i]}.bias", i, 3);
        }
        mapParameters(source + ".attn.proj", module + ".attention.output.dense", new[] { "weight", "bias" });
        mapParameters(source + ".mlp.fc1", module + ".intermediate.dense", new[] { "weight", "bias" });
        mapParameters(source + ".mlp.fc2", module + ".output.dense", new[] { "weight", "bias" });
    }

    private static void MapNeckAndHead(
        DPTConfig config, Action<string, string, int, int> map, Action<string, string, string[]> mapParameters)
    {
        var weightAndBias = new[] { "weight", "bias" };
        var fusionBias = config.FusionResidualBias ? weightAndBias : new[] { "weight" };
        for (int i = 2; i < config.NeckHiddenSizes.Length; i++)
        {
            // MiDaS' act_postprocess{n}: 0 = readout projection, 3 = 1×1 projection, 4 = resize (absent at factor 1).
            mapParameters(
                $"pretrained.act_postprocess{i + 1}.0.project.0",
                $"neck.reassemble_stage.readout_projects.{i}.0", weightAndBias);
            mapParameters(
                $"pretrained.act_postprocess{i + 1}.3", $"neck.reassemble_stage.layers.{i}.projection", weightAndBias);
            if (config.ReassembleFactors[i] != 1)
                mapParameters(
                    $"pretrained.act_postprocess{i + 1}.4", $"neck.reassemble_stage.layers.{i}.resize", weightAndBias);
        }
        for (int i = 0; i < config.NeckHiddenSizes.Length; i++)
            map($"scratch.layer{i + 1}_rn.weight", $"neck.convs.{i}.weight", 0, 1);
        for (int layer = 0; layer < config.NeckHiddenSizes.Length; layer++)
        {
            // MiDaS numbers the refinenets from the finest (1) to the coarsest (4); transformers fuses coarsest first.
            string source = $"scratch.refinenet{config.NeckHiddenSizes.Length - layer}",
            module = $"neck.fusion_stage.layers.{layer}";
            mapParameters(source + ".out_conv", module + ".projection", weightAndBias);
            for (int unit = 1; unit <= 2; unit++)
                for (int conv = 1; conv <= 2; conv++)
                    mapParameters(
                        $"{source}.resConfUnit{unit}.conv{conv}",
                        $"{module}.residual_layer{unit}.convolution{conv}", fusionBias);
        }
        foreach (var index in new[] { 0, 2, 4 })
            mapParameters($"scratch.output_conv.{index}", $"head.head.{index}", weightAndBias);
    }

    /// <summary>Every mapped checkpoint key (with <see cref="Prefix"/>).</summary>
    public IEnumerable<string> SourceKeys => _bySource.Keys;

    /// <summary>The module tensors <paramref name="sourceKey"/> fills (one, or three for a fused qkv); empty
    /// if unknown.</summary>
    public IReadOnlyList<DptKeyMapping> Resolve(string sourceKey) =>
        _bySource.TryGetValue(sourceKey, out var list) ? list : Array.Empty<DptKeyMapping>();

    /// <summary>timm's ImageNet classifier, which MiDaS keeps and DPT never uses (the converter
    /// drops it too).</summary>
    public static bool IsIgnored(string sourceKey) =>
        sourceKey.StartsWith(Prefix + "pretrained.model.head.", StringComparison.Ordinal);

    /// <summary>Whether <paramref name="file"/> holds a depth estimator (any <c>depth_model.model.*</c> key).</summary>
    public static bool HasDepthModel(ITensorFile file) =>
        file.Keys.Any(k => k.StartsWith(Prefix, StringComparison.Ordinal));

    /// <summary>
    /// Loads the estimator's weights from <paramref name="file"/> into <paramref name="model"/> (built on the meta
    /// device): every <c>depth_model.model.*</c> key must be mapped (or be the ignored classifier) with the expected
    /// shape, and every module tensor must be filled; all of it is checked before anything is read.
    /// </summary>
    /// <exception cref="ModelLoadException">A key is unknown, missing or misshapen (each named with
    /// the file).</exception>
    public static void Load(DPTForDepthEstimation model, ITensorFile file, ScalarType dtype, Device device)
    {
        var shapes = model.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        var map = new DptKeyMap(model.Config, shapes);
        var problems = new List<string>();
        var filled = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in file.Keys.Where(k => k.StartsWith(Prefix, StringComparison.Ordinal) && !IsIgnored(k))
            .Order(StringComparer.Ordinal))
        {
            var mappings = map.Resolve(key);
            if (mappings.Count == 0)
            {
                problems.Add(
                    $"unexpected key '{key}' in {file.Path}: no DPT-Hybrid " +
                    $"tensor of this architecture has that MiDaS name");
                continue;
            }
            var fileShape = file.ShapeOf(key);
            if (!fileShape.SequenceEqual(mappings[0].SourceShape))
            {
                problems.Add(
                    $"shape mismatch for key '{key}' in {file.Path}: file has [{string.Join(", ", fileShape)}], " +
                    $"the architecture expects [{string.Join(", ", mappings[0].SourceShape)}]");
                continue;
            }
            foreach (var mapping in mappings) filled.Add(mapping.ModuleKey);
        }
        foreach (var key in shapes.Keys.Where(k => !filled.Contains(k)).Order(StringComparer.Ordinal))
            problems.Add($"missing key for '{key}': not found in {file.Path}");
        if (problems.Count > 0)
            throw new ModelLoadException(
                $"Cannot load the depth estimator ({Prefix}*) of {file.Path}: " +
                $"{problems.Count} problem(s){Environment.NewLine}" +
                string.Join(Environment.NewLine, problems.Take(8).Select(p => "  " + p)) +
                (problems.Count > 8 ? $"{Environment.NewLine}  ... and {problems.Count - 8} more" : ""), problems);

        using var noGrad = torch.no_grad();
        var owners = ModuleParameters.Owners(model);
        foreach (var key in map.SourceKeys.Order(StringComparer.Ordinal))
        {
            // an independent copy: a plain weight becomes the parameter itself
            var source = file.Read(key, dtype, device);
            var mappings = map.Resolve(key);
            if (mappings.Count == 1 && mappings[0].Chunks == 1)
            {
                ModuleParameters.Replace(owners, mappings[0].ModuleKey, source);
                continue;
            }
            using (source)
            {
                foreach (var mapping in mappings)
                {
                    var rows = mapping.ModuleShape[0];
                    ModuleParameters.Replace(
                        owners, mapping.ModuleKey, source.narrow(0, mapping.Chunk * rows, rows).clone());
                }
            }
        }
    }
}
