using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// The explicit map between the original (ldm / CompVis / Stability-AI) layout of an SD 2.x single-file checkpoint
/// and the diffusers component layout, built key for key from the architecture (level count, ResNets per level,
/// which levels have attention, transformer depth, text layers). Nothing is renamed by pattern: a key is either one of
/// the enumerated weights (each with its expected shape), one of the named buffers inference never uses, or an error.
/// </summary>
/// <remarks>
/// The map is complete in both directions: <see cref="Resolve"/> turns a checkpoint key into the module tensors it
/// fills, <see cref="Inverse"/> turns a module key back into its checkpoint key, and <see cref="ToCheckpointTensor"/>
/// rebuilds a checkpoint tensor from module tensors.
/// </remarks>
public sealed class LdmKeyMap
{
    public const string UNetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string TextPrefix = "cond_stage_model.model.";

    /// <summary>
    /// The DDPM schedule buffers ldm's <c>LatentDiffusion.register_schedule</c> stores at the top level of every
    /// checkpoint. diffusers' schedulers recompute them from the config.
    /// </summary>
    public static readonly IReadOnlyList<string> ScheduleBuffers = new[]
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
    };

    /// <summary>
    /// The x4 upscaler's low-resolution noise-augmentation schedule (<c>AbstractLowScaleModel.register_schedule</c>);
    /// the pipeline's <c>low_res_scheduler</c> recomputes it.
    /// </summary>
    public static readonly IReadOnlyList<string> LowScaleModelBuffers = new[]
    {
        "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
    };

    /// <summary>The tensors of one OpenCLIP residual block, relative to <c>transformer.resblocks.N.</c>.</summary>
    public static readonly IReadOnlyList<string> TextBlockKeys = new[]
    {
        "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight",
        "attn.out_proj.bias",
        "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
    };

    /// <summary>
    /// MiDaS weights stored with the SD 2 depth checkpoint (<c>512-depth-ema</c>): a separate depth estimator that this
    /// engine does not run (it takes the depth map as input). Its DPT-Hybrid layout has hundreds of keys that only its
    /// own architecture could enumerate, so for the depth variant alone they are skipped by this prefix.
    /// </summary>
    public const string DepthModelPrefix = "depth_model.";

    private readonly Dictionary<string, List<LdmKeyMapping>> _bySource = new(StringComparer.Ordinal);
    private readonly Dictionary<SingleFileComponent, Dictionary<string, LdmKeyMapping>> _byModule = new()
    {
        [SingleFileComponent.UNet] = new(StringComparer.Ordinal),
        [SingleFileComponent.Vae] = new(StringComparer.Ordinal),
        [SingleFileComponent.TextEncoder] = new(StringComparer.Ordinal),
    };
    private readonly Dictionary<string, string> _ignored = new(StringComparer.Ordinal);
    private readonly bool _ignoreDepthModel;

    /// <summary>Builds the map for the components <paramref name="architecture"/> holds.</summary>
    public LdmKeyMap(LdmArchitecture architecture)
    {
        Architecture = architecture ?? throw new ArgumentNullException(nameof(architecture));
        foreach (var name in ScheduleBuffers)
            _ignored.Add(name, "ldm DDPM schedule buffer (recomputed by the scheduler)");
        if (architecture.UNet is { } unet)
        {
            AddUNet(unet);
            AddEmaNames();
            if (unet.NumClassEmbeds is not null)
                foreach (var name in LowScaleModelBuffers)
                    _ignored.Add(
                        "low_scale_model." + name,
                        "x4 upscaler low-res noise schedule buffer (recomputed by low_res_scheduler)");
            _ignoreDepthModel = unet.InChannels == 5;
        }
        if (architecture.Vae is { } vae) AddVae(vae);
        if (architecture.Text is { } text) AddText(text);
    }

    public LdmArchitecture Architecture { get; }

    /// <summary>Every mapped checkpoint key.</summary>
    public IEnumerable<string> SourceKeys => _bySource.Keys;

    /// <summary>Every module tensor of <paramref name="component"/>, by module key.</summary>
    public IReadOnlyDictionary<string, LdmKeyMapping> ModuleKeys(SingleFileComponent component) => _byModule[component];

    /// <summary>Checkpoint keys that are known and deliberately not loaded, with the reason.</summary>
    public IReadOnlyDictionary<string, string> IgnoredKeys => _ignored;

    /// <summary>Whether <paramref name="sourceKey"/> is a known key that inference does not use.</summary>
    public bool IsIgnored(string sourceKey) =>
        _ignored.ContainsKey(sourceKey)
            || (_ignoreDepthModel && sourceKey.StartsWith(DepthModelPrefix, StringComparison.Ordinal));

    /// <summary>Whether the map knows <paramref name="sourceKey"/> (mapped or ignored).</summary>
    public bool IsKnown(string sourceKey) => _bySource.ContainsKey(sourceKey) || IsIgnored(sourceKey);

    /// <summary>
    /// The module tensors a checkpoint key fills: one for most keys, three for a fused q/k/v projection, none for an
    /// ignored key.
    /// </summary>
    /// <exception cref="UnknownCheckpointKeyException">The key is neither mapped nor ignored.</exception>
    public IReadOnlyList<LdmKeyMapping> Resolve(string sourceKey, string filePath = "checkpoint")
    {
        if (_bySource.TryGetValue(sourceKey, out var mappings)) return mappings;
        if (IsIgnored(sourceKey)) return Array.Empty<LdmKeyMapping>();
        throw new UnknownCheckpointKeyException(filePath, new[] { sourceKey });
    }

    /// <summary>The checkpoint origin of a module tensor.</summary>
    /// <exception cref="KeyNotFoundException">The component has no such module key.</exception>
    public LdmKeyMapping Inverse(SingleFileComponent component, string moduleKey) =>
        _byModule[component].TryGetValue(moduleKey, out var mapping)
            ? mapping
            : throw new KeyNotFoundException($"The {component} has no module key '{moduleKey}' in this architecture.");

    /// <summary>
    /// A key map for one component, in the form <c>StateDictLoader.Load</c> takes: checkpoint key → module key, or null
    /// for keys of the other components and ignored keys. Throws <see cref="UnknownCheckpointKeyException"/> for an
    /// unknown key. Only 1:1 keys can be expressed this way: the UNet's keys all are, but the VAE's attention weights
    /// (reshape) and the text tower's fused q/k/v (split) are not — for those it throws
    /// <see cref="NotSupportedException"/>; <see cref="Loading.SingleFileLoader"/> loads every component
    /// with the conversions.
    /// </summary>
    public Func<string, string?> KeyMapFor(SingleFileComponent component, string filePath = "checkpoint") =>
        sourceKey =>
    {
        var mappings = Resolve(sourceKey, filePath);
        var mine = mappings.Where(m => m.Component == component).ToList();
        if (mine.Count == 0) return null;
        if (mine.Count == 1 && mine[0].Conversion == LdmConversion.Copy) return mine[0].ModuleKey;
        throw new NotSupportedException(
            $"'{sourceKey}' needs a {mine[0].Conversion} conversion into " +
            $"{string.Join(", ", mine.Select(m => m.ModuleKey))}; load it with SingleFileLoader.");
    };

    /// <summary>
    /// Checks a checkpoint header against the map before anything is read: every key known, every mapped key present
    /// with its expected shape.
    /// </summary>
    /// <exception cref="UnknownCheckpointKeyException">Keys the map does not know (all of them are listed).</exception>
    /// <exception cref="SingleFileCheckpointException">A mapped key is missing or has another shape.</exception>
    public void Validate(IReadOnlyDictionary<string, SafeTensorInfo> tensors, string filePath) =>
        Validate(SingleFileDetector.Shapes(tensors), filePath);

    /// <summary>As <see cref="Validate(IReadOnlyDictionary{string, SafeTensorInfo}, string)"/>, from
    /// key → shape.</summary>
    public void Validate(IReadOnlyDictionary<string, long[]> tensors, string filePath)
    {
        var unknown = tensors.Keys.Where(k => !IsKnown(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0) throw new UnknownCheckpointKeyException(filePath, unknown);
        var problems = new List<string>();
        foreach (var (key, mappings) in _bySource.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!tensors.TryGetValue(key, out var info))
                problems.Add($"missing '{key}' ([{Dims(mappings[0].SourceShape)}])");
            else if (!info.SequenceEqual(mappings[0].SourceShape))
                problems.Add($"'{key}' has shape [{Dims(info)}], expected [{Dims(mappings[0].SourceShape)}]");
        }
        if (problems.Count > 0)
            throw new SingleFileCheckpointException(filePath,
                $"{problems.Count} tensor(s) do not fit the detected architecture: " +
                $"{string.Join("; ", problems.Take(8))}{(problems.Count > 8 ? "; ..." : "")}");
    }

    /// <summary>Rebuilds the checkpoint tensor <paramref name="sourceKey"/> from module tensors (the inverse
    /// conversion).</summary>
    /// <exception cref="KeyNotFoundException">The key is not a mapped key.</exception>
    public Tensor ToCheckpointTensor(string sourceKey, Func<SingleFileComponent, string, Tensor> moduleTensor)
    {
        if (!_bySource.TryGetValue(sourceKey, out var mappings))
            throw new KeyNotFoundException($"'{sourceKey}' is not a mapped checkpoint key.");
        var first = mappings[0];
        return first.Conversion switch
        {
            LdmConversion.Copy => moduleTensor(first.Component, first.ModuleKey).alias(),
            LdmConversion.Conv1x1ToLinear => moduleTensor(first.Component, first.ModuleKey).reshape(first.SourceShape),
            LdmConversion.RowChunk =>
                torch.cat(
                    mappings.OrderBy(m => m.Chunk).Select(m => moduleTensor(m.Component, m.ModuleKey)).ToArray(), 0),
            _ => throw new InvalidOperationException($"unknown conversion {first.Conversion}"),
        };
    }

    private static string Dims(IEnumerable<long> shape) => string.Join(", ", shape);

    // ---- building
    // ----------------------------------------------------------------------------------------------------

    private void Add(SingleFileComponent component, string source, string module, long[] shape,
        LdmConversion conversion = LdmConversion.Copy, long[]? sourceShape = null, int chunk = 0, int chunks = 1)
    {
        var mapping = new LdmKeyMapping(
            component, source, sourceShape ?? shape, module, shape, conversion, chunk, chunks);
        if (!_bySource.TryGetValue(source, out var list)) _bySource.Add(source, list = new List<LdmKeyMapping>());
        list.Add(mapping);
        _byModule[component].Add(module, mapping); // throws on a duplicate: a map bug, never input-dependent
    }

    private void Weight(SingleFileComponent c, string source, string module, params long[] shape) =>
        Add(c, source + ".weight", module + ".weight", shape);

    private void Bias(SingleFileComponent c, string source, string module, long size) =>
        Add(c, source + ".bias", module + ".bias", new[] { size });

    private void Linear(
        SingleFileComponent c, string source, string module, long outFeatures, long inFeatures, bool bias = true)
    {
        Weight(c, source, module, outFeatures, inFeatures);
        if (bias) Bias(c, source, module, outFeatures);
    }

    private void Conv(
        SingleFileComponent c, string source, string module, long outChannels, long inChannels, long kernel)
    {
        Weight(c, source, module, outChannels, inChannels, kernel, kernel);
        Bias(c, source, module, outChannels);
    }

    /// <summary>GroupNorm or LayerNorm: weight and bias of one size.</summary>
    private void Norm(SingleFileComponent c, string source, string module, long channels)
    {
        Weight(c, source, module, channels);
        Bias(c, source, module, channels);
    }

    private void AddUNet(LdmUNetArchitecture u)
    {
        const SingleFileComponent C = SingleFileComponent.UNet;
        const string P = UNetPrefix;
        int levels = u.Levels;
        long temb = u.TimeEmbedDim;
        long c0 = u.BlockOutChannels[0];

        Linear(C, P + "time_embed.0", "time_embedding.linear_1", temb, c0);
        Linear(C, P + "time_embed.2", "time_embedding.linear_2", temb, temb);
        if (u.NumClassEmbeds is int classes) Weight(C, P + "label_emb", "class_embedding", classes, temb);
        Conv(C, P + "input_blocks.0.0", "conv_in", c0, u.InChannels, 3);

        // Down path: input_blocks counts every ResNet(+attention) and every downsampler in one sequence.
        var skips = new Stack<long>();
        skips.Push(c0);
        long ch = c0;
        int input = 1;
        for (int level = 0; level < levels; level++)
        {
            long width = u.BlockOutChannels[level];
            for (int j = 0; j < u.LayersPerBlock; j++, input++)
            {
                UNetResnet(P + $"input_blocks.{input}.0", $"down_blocks.{level}.resnets.{j}", ch, width, temb);
                ch = width;
                if (u.LevelHasAttention[level])
                    Transformer(
                        P + $"input_blocks.{input}.1", $"down_blocks.{level}.attentions.{j}", width, u,
                        u.OnlyCrossAttention[level]);
                skips.Push(ch);
            }
            if (level != levels - 1)
            {
                Conv(C, P + $"input_blocks.{input}.0.op", $"down_blocks.{level}.downsamplers.0.conv", width, width, 3);
                skips.Push(width);
                input++;
            }
        }

        UNetResnet(P + "middle_block.0", "mid_block.resnets.0", ch, ch, temb);
        Transformer(P + "middle_block.1", "mid_block.attentions.0", ch, u, onlyCross: false);
        UNetResnet(P + "middle_block.2", "mid_block.resnets.1", ch, ch, temb);

        // Up path: diffusers' up_blocks[i] is level (levels-1-i); each ResNet takes one skip connection.
        int output = 0;
        for (int up = 0; up < levels; up++)
        {
            int level = levels - 1 - up;
            long width = u.BlockOutChannels[level];
            for (int j = 0; j <= u.LayersPerBlock; j++, output++)
            {
                UNetResnet(
                    P + $"output_blocks.{output}.0", $"up_blocks.{up}.resnets.{j}", ch + skips.Pop(), width, temb);
                ch = width;
                int next = 1;
                if (u.LevelHasAttention[level])
                {
                    Transformer(
                        P + $"output_blocks.{output}.1", $"up_blocks.{up}.attentions.{j}",
                        width, u, u.OnlyCrossAttention[level]);
                    next = 2;
                }
                if (j == u.LayersPerBlock && up != levels - 1)
                    Conv(
                        C, P + $"output_blocks.{output}.{next}.conv",
                        $"up_blocks.{up}.upsamplers.0.conv", width, width, 3);
            }
        }

        Norm(C, P + "out.0", "conv_norm_out", ch);
        Conv(C, P + "out.2", "conv_out", u.OutChannels, ch, 3);
    }

    /// <summary>ldm <c>ResBlock</c> → diffusers <c>ResnetBlock2D</c>.</summary>
    private void UNetResnet(string source, string module, long inChannels, long outChannels, long temb)
    {
        const SingleFileComponent C = SingleFileComponent.UNet;
        Norm(C, source + ".in_layers.0", module + ".norm1", inChannels);
        Conv(C, source + ".in_layers.2", module + ".conv1", outChannels, inChannels, 3);
        Linear(C, source + ".emb_layers.1", module + ".time_emb_proj", outChannels, temb);
        Norm(C, source + ".out_layers.0", module + ".norm2", outChannels);
        Conv(C, source + ".out_layers.3", module + ".conv2", outChannels, outChannels, 3);
        if (inChannels != outChannels)
            Conv(C, source + ".skip_connection", module + ".conv_shortcut", outChannels, inChannels, 1);
    }

    /// <summary>ldm <c>SpatialTransformer</c> → diffusers <c>Transformer2DModel</c>: the sub-keys keep
    /// their names.</summary>
    private void Transformer(string source, string module, long width, LdmUNetArchitecture u, bool onlyCross)
    {
        const SingleFileComponent C = SingleFileComponent.UNet;
        long context = u.CrossAttentionDim;
        Norm(C, source + ".norm", module + ".norm", width);
        if (u.UseLinearProjection) Linear(C, source + ".proj_in", module + ".proj_in", width, width);
        else Conv(C, source + ".proj_in", module + ".proj_in", width, width, 1);
        for (int t = 0; t < u.TransformerDepth; t++)
        {
            string s = source + $".transformer_blocks.{t}", m = module + $".transformer_blocks.{t}";
            Norm(C, s + ".norm1", m + ".norm1", width);
            long selfKv = onlyCross ? context : width; // a cross-only first attention reads the text, not the image
            Linear(C, s + ".attn1.to_q", m + ".attn1.to_q", width, width, bias: false);
            Linear(C, s + ".attn1.to_k", m + ".attn1.to_k", width, selfKv, bias: false);
            Linear(C, s + ".attn1.to_v", m + ".attn1.to_v", width, selfKv, bias: false);
            Linear(C, s + ".attn1.to_out.0", m + ".attn1.to_out.0", width, width);
            Norm(C, s + ".norm2", m + ".norm2", width);
            Linear(C, s + ".attn2.to_q", m + ".attn2.to_q", width, width, bias: false);
            Linear(C, s + ".attn2.to_k", m + ".attn2.to_k", width, context, bias: false);
            Linear(C, s + ".attn2.to_v", m + ".attn2.to_v", width, context, bias: false);
            Linear(C, s + ".attn2.to_out.0", m + ".attn2.to_out.0", width, width);
            Norm(C, s + ".norm3", m + ".norm3", width);
            Linear(C, s + ".ff.net.0.proj", m + ".ff.net.0.proj", 8 * width, width); // GEGLU: value and gate, 4x each
            Linear(C, s + ".ff.net.2", m + ".ff.net.2", width, 4 * width);
        }
        if (u.UseLinearProjection) Linear(C, source + ".proj_out", module + ".proj_out", width, width);
        else Conv(C, source + ".proj_out", module + ".proj_out", width, width, 1);
    }

    /// <summary>
    /// ldm's <c>LitEma</c> stores an EMA copy of every UNet parameter as <c>model_ema.</c> + the parameter name of
    /// <c>model</c> (the DiffusionWrapper) with its dots removed, plus two buffers. The names are derived exactly from
    /// the UNet's keys rather than matched by the <c>model_ema.</c> prefix, so a stray key there is still reported.
    /// </summary>
    private void AddEmaNames()
    {
        _ignored.Add("model_ema.decay", "EMA decay (training state)");
        _ignored.Add("model_ema.num_updates", "EMA update count (training state)");
        foreach (var key in _bySource.Keys.Where(k => k.StartsWith(UNetPrefix, StringComparison.Ordinal)).ToList())
            _ignored.Add("model_ema." + key["model.".Length..].Replace(".", "", StringComparison.Ordinal),
                "EMA copy of a UNet weight (the checkpoint's model weights are loaded)");
    }

    private void AddVae(LdmVaeArchitecture v)
    {
        const SingleFileComponent C = SingleFileComponent.Vae;
        const string P = VaePrefix;
        int levels = v.Levels;
        long z = v.LatentChannels;

        long ch = v.BlockOutChannels[0];
        Conv(C, P + "encoder.conv_in", "encoder.conv_in", ch, v.InChannels, 3);
        for (int level = 0; level < levels; level++)
        {
            long width = v.BlockOutChannels[level];
            for (int j = 0; j < v.LayersPerBlock; j++)
            {
                VaeResnet(P + $"encoder.down.{level}.block.{j}", $"encoder.down_blocks.{level}.resnets.{j}", ch, width);
                ch = width;
            }
            if (level != levels - 1)
                Conv(
                    C, P + $"encoder.down.{level}.downsample.conv",
                    $"encoder.down_blocks.{level}.downsamplers.0.conv", width, width, 3);
        }
        VaeMid(P + "encoder.mid", "encoder.mid_block", ch);
        Norm(C, P + "encoder.norm_out", "encoder.conv_norm_out", ch);
        Conv(C, P + "encoder.conv_out", "encoder.conv_out", 2 * z, ch, 3); // mean and log-variance (double_z)
        Conv(C, P + "quant_conv", "quant_conv", 2 * z, 2 * z, 1);
        Conv(C, P + "post_quant_conv", "post_quant_conv", z, z, 1);

        ch = v.BlockOutChannels[levels - 1];
        Conv(C, P + "decoder.conv_in", "decoder.conv_in", ch, z, 3);
        VaeMid(P + "decoder.mid", "decoder.mid_block", ch);
        // ldm numbers decoder levels like the encoder's (up.0 is the full-resolution one) but runs them from the
        // last; diffusers numbers up_blocks in running order.
        for (int level = levels - 1; level >= 0; level--)
        {
            int up = levels - 1 - level;
            long width = v.BlockOutChannels[level];
            for (int j = 0; j <= v.LayersPerBlock; j++)
            {
                VaeResnet(P + $"decoder.up.{level}.block.{j}", $"decoder.up_blocks.{up}.resnets.{j}", ch, width);
                ch = width;
            }
            if (level != 0)
                Conv(
                    C, P + $"decoder.up.{level}.upsample.conv",
                    $"decoder.up_blocks.{up}.upsamplers.0.conv", width, width, 3);
        }
        Norm(C, P + "decoder.norm_out", "decoder.conv_norm_out", ch);
        Conv(C, P + "decoder.conv_out", "decoder.conv_out", v.OutChannels, ch, 3);
    }

    private void VaeResnet(string source, string module, long inChannels, long outChannels)
    {
        const SingleFileComponent C = SingleFileComponent.Vae;
        Norm(C, source + ".norm1", module + ".norm1", inChannels);
        Conv(C, source + ".conv1", module + ".conv1", outChannels, inChannels, 3);
        Norm(C, source + ".norm2", module + ".norm2", outChannels);
        Conv(C, source + ".conv2", module + ".conv2", outChannels, outChannels, 3);
        if (inChannels != outChannels)
            Conv(C, source + ".nin_shortcut", module + ".conv_shortcut", outChannels, inChannels, 1);
    }

    /// <summary>ldm <c>mid.block_1 / attn_1 / block_2</c> → diffusers <c>mid_block.resnets.0 / attentions.0 /
    /// resnets.1</c>.</summary>
    private void VaeMid(string source, string module, long ch)
    {
        const SingleFileComponent C = SingleFileComponent.Vae;
        VaeResnet(source + ".block_1", module + ".resnets.0", ch, ch);
        string s = source + ".attn_1", m = module + ".attentions.0";
        Norm(C, s + ".norm", m + ".group_norm", ch);
        foreach (var (ldm, diffusers) in
            new[] { ("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("proj_out", "to_out.0") })
        {
            // ldm's AttnBlock uses 1x1 convolutions; diffusers' Attention uses Linear layers with the same matrix.
            Add(
                C, $"{s}.{ldm}.weight", $"{m}.{diffusers}.weight", new[] { ch, ch }, LdmConversion.Conv1x1ToLinear,
                new[] { ch, ch, 1L, 1L });
            Bias(C, $"{s}.{ldm}", $"{m}.{diffusers}", ch);
        }
        VaeResnet(source + ".block_2", module + ".resnets.1", ch, ch);
    }

    private void AddText(LdmTextArchitecture t)
    {
        const SingleFileComponent C = SingleFileComponent.TextEncoder;
        const string P = TextPrefix;
        long w = t.Width;
        Add(
            C, P + "token_embedding.weight",
            "text_model.embeddings.token_embedding.weight", new[] { (long)t.VocabSize, w });
        Add(
            C, P + "positional_embedding", "text_model.embeddings.position_embedding.weight",
            new[] { (long)t.ContextLength, w });
        for (int n = 0; n < t.Layers; n++)
        {
            string s = P + $"transformer.resblocks.{n}", m = $"text_model.encoder.layers.{n}";
            Norm(C, s + ".ln_1", m + ".layer_norm1", w);
            string[] projections = { "q_proj", "k_proj", "v_proj" };
            for (int i = 0; i < 3; i++)
            {
                // nn.MultiheadAttention stacks the q, k and v projections row-wise in one in_proj tensor.
                Add(C, s + ".attn.in_proj_weight", $"{m}.self_attn.{projections[i]}.weight", new[] { w, w },
                    LdmConversion.RowChunk, new[] { 3 * w, w }, i, 3);
                Add(C, s + ".attn.in_proj_bias", $"{m}.self_attn.{projections[i]}.bias", new[] { w },
                    LdmConversion.RowChunk, new[] { 3 * w }, i, 3);
            }
            Linear(C, s + ".attn.out_proj", m + ".self_attn.out_proj", w, w);
            Norm(C, s + ".ln_2", m + ".layer_norm2", w);
            Linear(C, s + ".mlp.c_fc", m + ".mlp.fc1", t.MlpWidth, w);
            Linear(C, s + ".mlp.c_proj", m + ".mlp.fc2", w, t.MlpWidth);
        }
        Norm(C, P + "ln_final", "text_model.final_layer_norm", w);

        // SD 2.x reads the penultimate block's output, so the blocks after it never run.
        for (int n = t.Layers; n < t.CheckpointLayers; n++)
            foreach (var key in TextBlockKeys)
                _ignored.Add(
                    P + $"transformer.resblocks.{n}.{key}", "OpenCLIP block after the one SD 2.x reads (never run)");
        _ignored.Add(P + "text_projection", "OpenCLIP text projection (used for CLIP similarity, not by SD)");
        _ignored.Add(P + "logit_scale", "OpenCLIP logit scale (used for CLIP similarity, not by SD)");
    }
}
