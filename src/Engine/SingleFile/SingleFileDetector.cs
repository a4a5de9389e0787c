using PSStableDiffusion.Engine.IO;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Reads the architecture of an SD 2.x single-file checkpoint from its tensor shapes alone (the safetensors header or
/// the torch checkpoint's pickle: no tensor data is touched). What shapes cannot show (attention head layout,
/// prediction type) is left to
/// <see cref="SingleFilePlanner"/>.
/// </summary>
public static class SingleFileDetector
{
    /// <summary>Detects every component the file holds.</summary>
    /// <param name="notes">Receives one line per finding or ambiguity (for -Verbose output).</param>
    /// <exception cref="SingleFileCheckpointException">The tensors do not have the SD 2.x layout; the message names
    /// the key.</exception>
    public static LdmArchitecture Detect(
        IReadOnlyDictionary<string, SafeTensorInfo> tensors, string filePath, IList<string>? notes = null) =>
        Detect(Shapes(tensors), filePath, notes);

    /// <summary>Detects every component of an opened checkpoint (safetensors or torch zip): shapes only, no
    /// data read.</summary>
    public static LdmArchitecture Detect(ITensorFile file, IList<string>? notes = null) =>
        Detect(Shapes(file), file.Path, notes);

    /// <summary>Detects every component from tensor shapes (key → shape).</summary>
    public static LdmArchitecture Detect(
        IReadOnlyDictionary<string, long[]> shapes, string filePath, IList<string>? notes = null)
    {
        var header = new Header(shapes, filePath);
        notes ??= new List<string>();
        return new LdmArchitecture(DetectUNet(header, notes), DetectVae(header, notes), DetectText(header, notes));
    }

    /// <summary>Key → shape of a safetensors header.</summary>
    public static IReadOnlyDictionary<string, long[]> Shapes(IReadOnlyDictionary<string, SafeTensorInfo> tensors) =>
        tensors.ToDictionary(t => t.Key, t => t.Value.Shape, StringComparer.Ordinal);

    /// <summary>Key → shape of any tensor file, read from its index (no tensor data).</summary>
    public static IReadOnlyDictionary<string, long[]> Shapes(ITensorFile file) =>
        file.Keys.ToDictionary(k => k, file.ShapeOf, StringComparer.Ordinal);

    /// <summary>The variant a UNet belongs to, from its input channels and class embedding.</summary>
    /// <exception cref="NotSupportedException">A combination no SD 2.x model has.</exception>
    public static ModelKind VariantOf(LdmUNetArchitecture unet) =>
        (unet.InChannels, unet.NumClassEmbeds is not null) switch
    {
        (4, false) => ModelKind.TextToImage,
        (9, false) => ModelKind.Inpaint,
        (5, false) => ModelKind.Depth,
        (7, true) => ModelKind.Upscale,
        var (channels, classes) => throw new NotSupportedException(
            $"A UNet with {channels} input channels {(classes ? "and" : "without")} " +
            $"a class embedding is not an SD 2.x variant " +
            "(4: text-to-image, 9: inpainting, 5: depth, 7 + label_emb: x4 upscaler)."),
    };

    private sealed class Header
    {
        private readonly IReadOnlyDictionary<string, long[]> _tensors;

        public Header(IReadOnlyDictionary<string, long[]> tensors, string filePath)
        {
            _tensors = tensors; FilePath = filePath;
        }

        public string FilePath { get; }

        public bool Has(string key) => _tensors.ContainsKey(key);

        public bool HasPrefix(string prefix) => _tensors.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));

        public long[]? Shape(string key) => _tensors.TryGetValue(key, out var shape) ? shape : null;

        public long[] Require(string key, int rank, string what)
        {
            var shape = Shape(key)
                ?? throw Error($"missing '{key}' ({what}); this is not an SD 2.x ldm-layout checkpoint.");
            if (shape.Length != rank)
                throw Error($"'{key}' ({what}) has shape [{string.Join(", ", shape)}], expected {rank} dimensions.");
            return shape;
        }

        public SingleFileCheckpointException Error(string message) => new(FilePath, message);
    }

    private static LdmUNetArchitecture? DetectUNet(Header h, IList<string> notes)
    {
        const string P = LdmKeyMap.UNetPrefix;
        if (!h.HasPrefix(P)) return null;
        var convIn = h.Require(P + "input_blocks.0.0.weight", 4, "UNet conv_in"); // [C0, in, 3, 3]
        int inChannels = (int)convIn[1];
        var timeEmbed = h.Require(P + "time_embed.0.weight", 2, "UNet time embedding"); // [4*C0, C0]
        if (timeEmbed[1] != convIn[0] || timeEmbed[0] != 4 * convIn[0])
            throw h.Error(
                $"'{P}time_embed.0.weight' is [{timeEmbed[0]}, {timeEmbed[1]}]; " +
                $"diffusers needs [4 x {convIn[0]}, {convIn[0]}] (channel_mult[0] = 1).");

        // Walk input_blocks: each is a ResNet (+ optional transformer) or a downsampler that closes a level.
        var widths = new List<int>();
        var resnetsPerLevel = new List<int> { 0 };
        var attention = new List<List<bool>> { new() };
        for (int i = 1; ; i++)
        {
            string b = P + $"input_blocks.{i}.";
            if (h.Has(b + "0.op.weight")) { resnetsPerLevel.Add(0); attention.Add(new()); continue; }
            if (!h.Has(b + "0.in_layers.2.weight")) break;
            int width = (int)h.Require(b + "0.out_layers.3.weight", 4, "ResNet conv2")[0];
            int level = resnetsPerLevel.Count - 1;
            if (resnetsPerLevel[level] == 0) widths.Add(width);
            else if (widths[level] != width) throw h.Error(
                $"'{b}0' has width {width}, the rest of level {level} has {widths[level]}.");
            resnetsPerLevel[level]++;
            attention[level].Add(h.Has(b + "1.norm.weight"));
        }
        if (widths.Count == 0 || widths.Count != resnetsPerLevel.Count)
            throw h.Error($"'{P}input_blocks' do not form ResNet levels separated by downsamplers.");
        int layersPerBlock = resnetsPerLevel[0];
        for (int level = 0; level < widths.Count; level++)
        {
            if (resnetsPerLevel[level] != layersPerBlock)
                throw h.Error(
                    $"UNet level {level} has {resnetsPerLevel[level]} ResNets, level " +
                    $"0 has {layersPerBlock}; per-level counts are not supported.");
            if (attention[level].Distinct().Count() != 1)
                throw h.Error($"UNet level {level} has attention after some ResNets only.");
        }
        var hasAttention = attention.Select(a => a[0]).ToArray();

        // The mid block's transformer tells the projection type, depth and text width.
        string mid = P + "middle_block.1.";
        var projIn = h.Shape(mid + "proj_in.weight")
            ?? throw h.Error($"missing '{mid}proj_in.weight': SD 2.x UNets have a mid-block transformer.");
        bool linear = projIn.Length == 2;
        int depth = 0;
        while (h.Has(mid + $"transformer_blocks.{depth}.norm1.weight")) depth++;
        int context =
            (int)h.Require(mid + "transformer_blocks.0.attn2.to_k.weight", 2, "cross-attention key projection")[1];

        // Only-cross-attention shows in attn1's key width: the text width instead of the level width.
        var onlyCross = new bool[widths.Count];
        int blockIndex = 1;
        for (int level = 0; level < widths.Count; level++, blockIndex += layersPerBlock + 1)
        {
            if (!hasAttention[level]) continue;
            var selfKey = h.Require(
                P + $"input_blocks.{blockIndex}.1.transformer_blocks.0.attn1.to_k.weight", 2,
                "self-attention key projection");
            if (selfKey[1] == widths[level] && widths[level] == context)
                notes.Add(
                    $"Assumed: UNet level {level} ({widths[level]} wide, as wide as the " +
                    $"text) uses self-attention; its weights look the same either way.");
            else onlyCross[level] = selfKey[1] == context;
        }

        int? classes = h.Shape(P + "label_emb.weight") is { Length: 2 } labels ? (int)labels[0] : null;
        int outChannels = (int)h.Require(P + "out.2.weight", 4, "UNet conv_out")[0];
        var unet = new LdmUNetArchitecture(inChannels, outChannels, widths, layersPerBlock, hasAttention, onlyCross,
            depth, context, linear, classes);
        notes.Add(
            $"Detected UNet: in_channels {inChannels} ({P}input_blocks.0.0.weight [{string.Join(", ", convIn)}])" +
                  $"{(classes is null ? "" : $", class embedding of {classes} ({P}label_emb.weight)")}, " +
                  $"widths [{string.Join(", ", widths)}], " +
                  $"{layersPerBlock} ResNets per level, attention on levels " +
                  $"[{string.Join(", ", Enumerable.Range(0, widths.Count).Where(l => hasAttention[l]))}]" +
                  (onlyCross.Any(x => x)
                      ? " (cross-attention only on " +
                        $"[{string.Join(", ", Enumerable.Range(0, widths.Count).Where(l => onlyCross[l]))}])"
                      : "") + ", " +
                  $"transformer depth {depth}, text width {context}, {(linear ? "linear" : "1x1 convolution")} " +
                  $"projections (proj_in [{string.Join(", ", projIn)}]).");
        return unet;
    }

    private static LdmVaeArchitecture? DetectVae(Header h, IList<string> notes)
    {
        const string P = LdmKeyMap.VaePrefix;
        if (!h.HasPrefix(P)) return null;
        var convIn = h.Require(P + "encoder.conv_in.weight", 4, "VAE encoder conv_in");
        var widths = new List<int>();
        while (h.Has(P + $"encoder.down.{widths.Count}.block.0.conv2.weight"))
            widths.Add((int)h.Require(
                P + $"encoder.down.{widths.Count}.block.0.conv2.weight", 4, "VAE ResNet conv2")[0]);
        if (widths.Count == 0)
            throw h.Error($"missing '{P}encoder.down.0.block.0.conv2.weight': no VAE encoder levels.");
        int layers = 0;
        while (h.Has(P + $"encoder.down.0.block.{layers}.conv1.weight")) layers++;
        int latent = (int)h.Require(P + "decoder.conv_in.weight", 4, "VAE decoder conv_in")[1];
        var quant = h.Require(P + "quant_conv.weight", 4, "VAE quant_conv");
        if (quant[0] != 2 * latent || quant[1] != 2 * latent)
            throw h.Error(
                $"'{P}quant_conv.weight' is [{string.Join(", ", quant)}]; " +
                $"diffusers needs embed_dim = z_channels = {latent}.");
        int outChannels = (int)h.Require(P + "decoder.conv_out.weight", 4, "VAE decoder conv_out")[0];
        var vae = new LdmVaeArchitecture((int)convIn[1], outChannels, widths, layers, latent);
        notes.Add(
            $"Detected VAE: widths [{string.Join(", ", widths)}] (downscale " +
            $"x{vae.DownscaleFactor}), {layers} ResNets per level, {latent} latent channels.");
        return vae;
    }

    private static LdmTextArchitecture? DetectText(Header h, IList<string> notes)
    {
        const string P = LdmKeyMap.TextPrefix;
        if (!h.HasPrefix(P))
        {
            if (h.HasPrefix("cond_stage_model.transformer."))
                throw h.Error(
                    "the text encoder is OpenAI CLIP ('cond_stage_model.transformer.*'): " +
                    "an SD 1.x checkpoint, not SD 2.x.");
            return null;
        }
        var tokens = h.Require(P + "token_embedding.weight", 2, "token embedding"); // [vocab, width]
        var positions = h.Require(P + "positional_embedding", 2, "positional embedding"); // [77, width]
        int blocks = 0;
        while (h.Has(P + $"transformer.resblocks.{blocks}.ln_1.weight")) blocks++;
        if (blocks < 2)
            throw h.Error($"'{P}transformer.resblocks' has {blocks} block(s); SD 2.x reads the penultimate one.");
        int mlp = (int)h.Require(P + "transformer.resblocks.0.mlp.c_fc.weight", 2, "text MLP")[0];
        var text = new LdmTextArchitecture((int)tokens[1], blocks - 1, blocks, mlp, (int)tokens[0], (int)positions[0]);
        notes.Add(
            $"Detected text encoder: OpenCLIP width {text.Width}, {blocks} blocks of which " +
            $"{blocks - 1} run (SD 2.x uses the penultimate layer), vocabulary {text.VocabSize}.");
        return text;
    }
}
