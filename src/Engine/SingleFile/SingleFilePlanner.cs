using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Configs;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Turns an SD 2.x single-file checkpoint (+ optional ldm YAML) into a <see cref="SingleFileModelPlan"/>. Only the
/// safetensors header is read. The architecture always comes from the tensor shapes; the YAML, when present, must
/// agree with them and supplies what shapes cannot show (head layout, parameterization, sizes, schedule). Without a
/// YAML those come from the released SD 2.x models and diffusers' own single-file rules, and are listed as assumptions.
/// </summary>
public static class SingleFilePlanner
{
    /// <summary>Channels per attention head in every released SD 2.x UNet except the x4 upscaler
    /// (num_head_channels: 64).</summary>
    public const int Sd2HeadChannels = 64;

    /// <summary>Heads per attention layer of the x4 upscaler's UNet (num_heads: 8).</summary>
    public const int UpscalerHeads = 8;

    /// <summary>Channels per head of OpenCLIP's text towers (ViT-H/14: width 1024, 16 heads).</summary>
    public const int OpenClipHeadChannels = 64;

    private const string ResourcePrefix = "PSStableDiffusion.Engine.SingleFile.Configs.";

    /// <summary>Plans the checkpoint at <paramref name="checkpointPath"/> (safetensors or a torch
    /// <c>.ckpt</c>).</summary>
    /// <exception cref="FileNotFoundException">The checkpoint (or the given config) does not exist.</exception>
    /// <exception cref="SafeTensorsFormatException">The file is not valid safetensors.</exception>
    /// <exception cref="Checkpoints.CheckpointFormatException">The file is a malformed, legacy or unsafe torch
    /// checkpoint.</exception>
    /// <exception cref="UnknownCheckpointKeyException">The file has keys that are neither weights nor known unused
    /// buffers.</exception>
    /// <exception cref="SingleFileCheckpointException">The weights do not have the SD 2.x layout or disagree with
    /// the config.</exception>
    /// <exception cref="FormatException">The YAML is malformed.</exception>
    public static SingleFileModelPlan Plan(string checkpointPath, SingleFileOptions? options = null)
    {
        options ??= new SingleFileOptions();
        checkpointPath = Path.GetFullPath(checkpointPath);
        if (!File.Exists(checkpointPath))
            throw new FileNotFoundException($"Checkpoint not found: {checkpointPath}", checkpointPath);
        using var file = CheckpointFiles.Open(checkpointPath);
        return Plan(file, options);
    }

    /// <summary>
    /// Plans an opened checkpoint from its tensor shapes. A torch checkpoint's <c>global_step</c> takes part in the
    /// prediction-type guess as in diffusers (875000, the SD 2.x 512-base release, means epsilon).
    /// </summary>
    public static SingleFileModelPlan Plan(ITensorFile file, SingleFileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        return Plan(
            SingleFileDetector.Shapes(file), Path.GetFullPath(file.Path), options, CheckpointFiles.GlobalStep(file));
    }

    /// <summary>Plans from an already opened header (<see cref="SafeTensorsFile.Tensors"/>).</summary>
    public static SingleFileModelPlan Plan(
        IReadOnlyDictionary<string, SafeTensorInfo> tensors, string checkpointPath,
        SingleFileOptions? options = null) =>
        Plan(SingleFileDetector.Shapes(tensors), checkpointPath, options, globalStep: null);

    /// <summary>Plans from tensor shapes (key → shape) and, for torch checkpoints, their <c>global_step</c>.</summary>
    public static SingleFileModelPlan Plan(
        IReadOnlyDictionary<string, long[]> tensors, string checkpointPath, SingleFileOptions? options,
        long? globalStep)
    {
        options ??= new SingleFileOptions();
        var notes = new List<string>();
        var detected = SingleFileDetector.Detect(tensors, checkpointPath, notes);
        var unet = detected.UNet
            ?? throw new SingleFileCheckpointException(checkpointPath, $"no UNet weights ('{LdmKeyMap.UNetPrefix}*').");
        var vae = detected.Vae
            ?? throw new SingleFileCheckpointException(checkpointPath, $"no VAE weights ('{LdmKeyMap.VaePrefix}*').");
        var text = detected.Text
            ?? throw new SingleFileCheckpointException(
                checkpointPath, $"no OpenCLIP text encoder weights ('{LdmKeyMap.TextPrefix}*').");
        var variant = SingleFileDetector.VariantOf(unet);
        notes.Add(
            $"Detected variant {variant}: in_channels " +
            $"{unet.InChannels}{(unet.NumClassEmbeds is null ? "" : " with a class embedding")}.");

        string? configPath = options.ConfigPath is not null ? Path.GetFullPath(options.ConfigPath) : null;
        if (configPath is null && options.UseConfigBesideCheckpoint)
        {
            var beside = Path.ChangeExtension(checkpointPath, ".yaml");
            if (File.Exists(beside)) configPath = beside;
        }
        var yaml = configPath is null ? null : new LdmConfigView(LdmYaml.Load(configPath), configPath, checkpointPath);
        if (yaml is not null)
        {
            notes.Add($"Config: {configPath}.");
            (unet, text) = yaml.CheckAgainst(unet, vae, text, notes);
        }
        else notes.Add(
            "Config: none given or beside the checkpoint; the settings below that weights cannot show are assumed.");

        var prediction = PredictionType(options, yaml, variant, unet, globalStep, notes);
        int factor = vae.DownscaleFactor;
        int defaultSize = DefaultSize(yaml, variant, prediction, factor, notes);
        bool upcast = variant == ModelKind.TextToImage && prediction == "v_prediction";
        if (upcast)
            notes.Add(
                "Set upcast_attention: SD 2.1 768-v (v-prediction text-to-image) " +
                "ships with it in diffusers' stable-diffusion-2-1 unet config.");

        var unresolved = new List<string>();
        var heads = HeadLayout(yaml, variant, unet, notes, unresolved);
        int textHeads = TextHeads(yaml, text, notes, unresolved);
        double scaling = yaml?.ScaleFactor ?? Assumed(variant == ModelKind.Upscale ? 0.08333 : 0.18215, notes,
            v =>
                $"Assumed VAE scaling_factor {v.ToString(CultureInfo.InvariantCulture)} (the " +
                $"released {(variant == ModelKind.Upscale ? "x4 upscaler" : "SD 2.x")} value).");

        var keyMap = new LdmKeyMap(new LdmArchitecture(unet, vae, text));
        keyMap.Validate(tensors, checkpointPath);
        var ignored = tensors.Keys.Where(keyMap.IsIgnored).Order(StringComparer.Ordinal).ToList();
        if (ignored.Count > 0)
            notes.Add(
                $"Ignoring {ignored.Count} known key(s) inference never uses " +
                $"(unused text block, projection, schedule buffers, EMA copies).");
        if (variant == ModelKind.Depth)
        {
            // Released depth checkpoints bundle MiDaS (DPT-Hybrid) under depth_model.*: the ldm components skip those
            // weights; the depth estimator loads them itself when depth-to-image first runs without a depth map.
            int midas = tensors.Keys.Count(k => k.StartsWith(LdmKeyMap.DepthModelPrefix, StringComparison.Ordinal));
            notes.Add(midas > 0
                ? $"The file bundles the MiDaS depth estimator ({midas} '{LdmKeyMap.DepthModelPrefix}*' " +
                    $"tensors): it loads when an image comes without a depth map."
                : $"No MiDaS depth estimator ('{LdmKeyMap.DepthModelPrefix}*') " +
                    $"in the file: depth-to-image needs a depth map.");
        }

        var (scheduler, lowRes, maxNoise) = SchedulerConfigs(yaml, variant, prediction, notes);
        return new SingleFileModelPlan(checkpointPath, configPath, variant, prediction, defaultSize,
            UNetConfig(unet, heads, upcast, defaultSize / factor).ToJsonString(Indented),
            VaeConfig(vae, scaling, defaultSize).ToJsonString(Indented),
            TextConfig(text, textHeads).ToJsonString(Indented),
            scheduler, lowRes, maxNoise, notes, keyMap, ignored, unresolved);
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private static T Assumed<T>(T value, List<string> notes, Func<T, string> note)
    {
        notes.Add(note(value));
        return value;
    }

    /// <summary>Normalises the names people use for the two parameterizations to diffusers' names.</summary>
    /// <exception cref="ArgumentException">Another name.</exception>
    public static string NormalizePredictionType(string value) => value.Trim().ToLowerInvariant() switch
    {
        "epsilon" or "eps" => "epsilon",
        "v_prediction" or "v-prediction" or "v" or "vprediction" => "v_prediction",
        _ =>
            throw new ArgumentException($"Unknown prediction type '{value}' (epsilon or v_prediction).", nameof(value)),
    };

    /// <summary>diffusers' <c>global_step</c> of the SD 2.x 512-base release: the one step it takes
    /// as epsilon.</summary>
    public const long Sd2BaseGlobalStep = 875000;

    private static string PredictionType(
        SingleFileOptions options, LdmConfigView? yaml, ModelKind variant, LdmUNetArchitecture unet,
        long? globalStep, List<string> notes)
    {
        if (options.PredictionType is not null)
        {
            var chosen = NormalizePredictionType(options.PredictionType);
            notes.Add($"Prediction type {chosen}: given explicitly.");
            return chosen;
        }
        if (yaml is not null)
        {
            var parameterization = yaml.Parameterization;
            var chosen = parameterization == "v" ? "v_prediction" : "epsilon";
            notes.Add(
                $"Prediction type {chosen}: config parameterization " +
                $"'{parameterization ?? "(absent: ldm default eps)"}'.");
            return chosen;
        }
        switch (variant)
        {
            case ModelKind.TextToImage:
                // diffusers' from_single_file: an SD 2.x text-to-image checkpoint is v_prediction unless its
                // global_step is 875000 (the 512-base release). Safetensors files carry no global_step, so
                // they take v_prediction.
                var evidenceKey = LdmKeyMap.UNetPrefix + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight";
                var evidence = $"an SD 2.x checkpoint (text width {unet.CrossAttentionDim} at '{evidenceKey}')";
                if (globalStep == Sd2BaseGlobalStep)
                {
                    notes.Add(
                        $"Assumed prediction type epsilon, as diffusers' " +
                        $"from_single_file does for {evidence} whose global_step is " +
                              $"{Sd2BaseGlobalStep} (the 2.x 512-base release). For a " +
                              $"v-prediction model, give PredictionType v_prediction.");
                    return "epsilon";
                }
                notes.Add($"Assumed prediction type v_prediction, as diffusers' from_single_file does for {evidence} " +
                          (globalStep is { } step ? $"with global_step {step}" : "without " +
                              "global_step (safetensors files have none)") +
                          $": it picks epsilon only for global_step {Sd2BaseGlobalStep} " +
                          $"(2.x 512-base). For stable-diffusion-2(-1)-base " +
                          "and other epsilon models, give PredictionType epsilon.");
                return "v_prediction";
            case ModelKind.Upscale:
                notes.Add(
                    "Assumed prediction type v_prediction: the x4 upscaler's released config " +
                    "(x4-upscaling.yaml parameterization v; diffusers' stable-diffusion-x4-upscaler scheduler).");
                return "v_prediction";
            default:
                notes.Add(
                    $"Assumed prediction type epsilon: the released SD 2 {variant} model (its ldm config has no " +
                    $"parameterization; diffusers' " +
                    (variant == ModelKind.Inpaint ? "stable-diffusion-2-inpainting" : "stable-diffusion-2-depth") +
                    " scheduler).");
                return "epsilon";
        }
    }

    private static int DefaultSize(
        LdmConfigView? yaml, ModelKind variant, string prediction, int factor, List<string> notes)
    {
        if (yaml?.ImageSize is int latent)
        {
            notes.Add($"Default size {latent * factor}: config image_size {latent} (latent) x {factor}.");
            return latent * factor;
        }
        int size = variant switch
        {
            ModelKind.TextToImage => prediction == "v_prediction" ? 768 : 512,
            ModelKind.Upscale => 128 * factor,
            _ => 512,
        };
        notes.Add(variant == ModelKind.Upscale
            ? $"Assumed default size {size}: the x4 upscaler's UNet sample_size 128 (a 128-pixel input) x {factor}."
            : $"Assumed default size {size}, as diffusers does (" +
                (variant == ModelKind.TextToImage
                    ? "768 for v_prediction SD 2.x, 512 for epsilon"
                    : "the released 512 model") + ").");
        return size;
    }

    /// <summary>Heads per level as diffusers' <c>attention_head_dim</c> holds them (SD 2.x: a head count): a list, or
    /// one value.</summary>
    private static JsonNode HeadLayout(
        LdmConfigView? yaml, ModelKind variant, LdmUNetArchitecture unet, List<string> notes,
        List<string> unresolved)
    {
        if (yaml is not null)
        {
            var (headChannels, heads) = yaml.HeadSettings;
            if (headChannels > 0)
            {
                var perLevel = unet.BlockOutChannels.Select(w => w % headChannels == 0 ? w / headChannels
                    : throw new SingleFileCheckpointException(
                        yaml.ConfigPath,
                        $"num_head_channels {headChannels} does not divide the UNet width {w}.")).ToArray();
                notes.Add($"Attention heads [{string.Join(", ", perLevel)}]: config num_head_channels {headChannels}.");
                return new JsonArray(perLevel.Select(h => (JsonNode)h).ToArray());
            }
            if (heads > 0)
            {
                notes.Add($"Attention heads {heads}: config num_heads.");
                return heads;
            }
            throw new SingleFileCheckpointException(
                yaml.ConfigPath, "unet_config.params has neither num_head_channels nor num_heads.");
        }
        if (variant == ModelKind.Upscale)
        {
            notes.Add(
                $"Assumed {UpscalerHeads} attention heads per layer (the released " +
                $"x4 upscaler's num_heads; weights cannot show the head layout).");
            return UpscalerHeads;
        }
        var layout = unet.BlockOutChannels.Select(w => w % Sd2HeadChannels == 0 ? w / Sd2HeadChannels : 1).ToArray();
        notes.Add(
            $"Assumed {Sd2HeadChannels} channels per attention head (released SD 2.x num_head_channels; " +
            $"weights cannot show the head layout): heads [{string.Join(", ", layout)}].");
        foreach (var w in unet.BlockOutChannels.Distinct().Where(w => w % Sd2HeadChannels != 0))
        {
            notes.Add(
                $"Assumed a single head for UNet width {w}, which is not a " +
                $"multiple of {Sd2HeadChannels}: give an ldm config for this model.");
            unresolved.Add(
                $"the attention heads of UNet width {w} (not a multiple of the " +
                $"{Sd2HeadChannels} channels per head of every released SD 2.x UNet)");
        }
        return new JsonArray(layout.Select(h => (JsonNode)h).ToArray());
    }

    private static int TextHeads(
        LdmConfigView? yaml, LdmTextArchitecture text, List<string> notes, List<string> unresolved)
    {
        if (yaml?.TextTowerHeads is int heads)
        {
            notes.Add($"Text encoder heads {heads}: config text_tower.heads.");
            return heads;
        }
        if (text.Width % OpenClipHeadChannels == 0)
        {
            notes.Add(
                $"Assumed {text.Width / OpenClipHeadChannels} text encoder heads " +
                $"({OpenClipHeadChannels} channels per head, as in OpenCLIP ViT-H/14).");
            return text.Width / OpenClipHeadChannels;
        }
        notes.Add(
            $"Assumed a single text encoder head: width {text.Width} is not a multiple of {OpenClipHeadChannels}.");
        unresolved.Add(
            $"the text encoder heads of width {text.Width} (not a multiple " +
            $"of OpenCLIP's {OpenClipHeadChannels} channels per head)");
        return 1;
    }

    private static (string Scheduler, string? LowRes, int? MaxNoise) SchedulerConfigs(
        LdmConfigView? yaml, ModelKind variant, string prediction, List<string> notes)
    {
        bool upscale = variant == ModelKind.Upscale;
        // diffusers' from_single_file reads the scheduler of the checkpoint's default hub repo (stabilityai/
        // stable-diffusion-2-1 for every SD 2.x text-to-image checkpoint). That file, written by diffusers 0.8.0,
        // states only a dozen keys; every other one is the class default, so a scheduler built from it by name
        // (from_config) takes its own default there too (DPM-Solver's timestep_spacing is linspace,
        // not DDIM's leading).
        var scheduler = ReadConfig(upscale ? "x4-upscaler.scheduler.json" : "sd21-ddim.scheduler.json");
        scheduler["prediction_type"] = prediction;
        if (yaml is not null)
        {
            // As diffusers does with an original config: betas and step count from the ldm schedule.
            if (yaml.LinearStart is double start) scheduler["beta_start"] = start;
            if (yaml.LinearEnd is double end) scheduler["beta_end"] = end;
            if (yaml.Timesteps is int steps) scheduler["num_train_timesteps"] = steps;
        }
        notes.Add(
            $"Scheduler: DDIM {scheduler["beta_schedule"]} " +
            $"{scheduler["beta_start"]}..{scheduler["beta_end"]}, {prediction}" +
                  (yaml is null
                      ? $" (the released {(upscale ? "x4 upscaler" : "SD 2.1")} scheduler config)."
                      : " (betas from the config)."));
        if (!upscale) return (scheduler.ToJsonString(Indented), null, null);

        var lowRes = ReadConfig("x4-upscaler.low_res_scheduler.json");
        if (yaml?.LowScaleLinearStart is double lowStart) lowRes["beta_start"] = lowStart;
        if (yaml?.LowScaleLinearEnd is double lowEnd) lowRes["beta_end"] = lowEnd;
        int maxNoise = yaml?.MaxNoiseLevel
            ?? Assumed(350, notes, v => $"Assumed max_noise_level {v} (the released x4 upscaler's).");
        return (scheduler.ToJsonString(Indented), lowRes.ToJsonString(Indented), maxNoise);
    }

    /// <summary>An embedded scheduler config (the keys of the released models' saved configs).</summary>
    public static JsonObject ReadConfig(string fileName)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourcePrefix + fileName)
            ?? throw new FileNotFoundException($"No embedded single-file config named '{fileName}'.", fileName);
        var node = JsonNode.Parse(stream) as JsonObject
            ?? throw new InvalidDataException($"Embedded config '{fileName}' is not a JSON object.");
        node.Remove("_diffusers_version");
        return node;
    }

    private static JsonObject UNetConfig(LdmUNetArchitecture u, JsonNode heads, bool upcast, int sampleSize)
    {
        var down = u.LevelHasAttention.Select(a => (JsonNode)(a ? "CrossAttnDownBlock2D" : "DownBlock2D")).ToArray();
        var up = u.LevelHasAttention.Reverse()
            .Select(a => (JsonNode)(a ? "CrossAttnUpBlock2D" : "UpBlock2D"))
            .ToArray();
        JsonNode onlyCross = u.OnlyCrossAttention.Any(x => x)
            ? new JsonArray(u.OnlyCrossAttention.Select(x => (JsonNode)x).ToArray())
            : false;
        // The constants are properties of ldm's UNetModel itself: sinusoidal embedding with cos first and no shift,
        // GroupNorm(32, eps 1e-5), SiLU, padded stride-2 downsampling, unscaled mid block.
        return new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["act_fn"] = "silu",
            ["attention_head_dim"] = heads,
            ["block_out_channels"] = new JsonArray(u.BlockOutChannels.Select(c => (JsonNode)c).ToArray()),
            ["center_input_sample"] = false,
            ["cross_attention_dim"] = u.CrossAttentionDim,
            ["down_block_types"] = new JsonArray(down),
            ["downsample_padding"] = 1,
            ["dual_cross_attention"] = false,
            ["flip_sin_to_cos"] = true,
            ["freq_shift"] = 0,
            ["in_channels"] = u.InChannels,
            ["layers_per_block"] = u.LayersPerBlock,
            ["mid_block_scale_factor"] = 1,
            ["mid_block_type"] = "UNetMidBlock2DCrossAttn",
            ["norm_eps"] = 1e-05,
            ["norm_num_groups"] = 32,
            ["num_attention_heads"] = null,
            ["num_class_embeds"] = u.NumClassEmbeds,
            ["only_cross_attention"] = onlyCross,
            ["out_channels"] = u.OutChannels,
            ["sample_size"] = sampleSize,
            ["transformer_layers_per_block"] = u.TransformerDepth,
            ["up_block_types"] = new JsonArray(up),
            ["upcast_attention"] = upcast,
            ["use_linear_projection"] = u.UseLinearProjection,
        };
    }

    private static JsonObject VaeConfig(LdmVaeArchitecture v, double scalingFactor, int sampleSize) => new()
    {
        ["_class_name"] = "AutoencoderKL",
        ["act_fn"] = "silu",
        ["block_out_channels"] = new JsonArray(v.BlockOutChannels.Select(c => (JsonNode)c).ToArray()),
        ["down_block_types"] = new JsonArray(v.BlockOutChannels.Select(_ => (JsonNode)"DownEncoderBlock2D").ToArray()),
        ["force_upcast"] = true,
        ["in_channels"] = v.InChannels,
        ["latent_channels"] = v.LatentChannels,
        ["layers_per_block"] = v.LayersPerBlock,
        ["norm_num_groups"] = 32,
        ["out_channels"] = v.OutChannels,
        ["sample_size"] = sampleSize,
        ["scaling_factor"] = scalingFactor,
        ["up_block_types"] = new JsonArray(v.BlockOutChannels.Select(_ => (JsonNode)"UpDecoderBlock2D").ToArray()),
    };

    /// <summary>The SD 2.x text encoder config (token ids, activation, eps) with the detected sizes.</summary>
    private static JsonObject TextConfig(LdmTextArchitecture t, int heads)
    {
        var config = JsonNode.Parse(KnownModelConfigs.ReadJson("sd21-text_encoder.json")) as JsonObject
            ?? throw new InvalidDataException("Embedded sd21-text_encoder.json is not a JSON object.");
        config["hidden_size"] = t.Width;
        config["intermediate_size"] = t.MlpWidth;
        config["num_hidden_layers"] = t.Layers;
        config["num_attention_heads"] = heads;
        config["max_position_embeddings"] = t.ContextLength;
        config["vocab_size"] = t.VocabSize;
        return config;
    }
}
