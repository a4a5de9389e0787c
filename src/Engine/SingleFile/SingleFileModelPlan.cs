using System.Text.Json;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Everything needed to run an SD 2.x single-file checkpoint with the diffusers-layout models: the component configs
/// as the JSON <c>config.json</c> files would hold, the scheduler config, the key map, and what was assumed.
/// Create it with <see cref="SingleFilePlanner.Plan"/>; load weights with <see cref="Loading.SingleFileLoader"/>.
/// </summary>
public sealed class SingleFileModelPlan
{
    internal SingleFileModelPlan(string checkpointPath, string? configPath, ModelKind variant, string predictionType,
        int defaultSize, string unetConfigJson, string vaeConfigJson, string textEncoderConfigJson,
        string schedulerConfigJson,
        string? lowResSchedulerConfigJson, int? maxNoiseLevel, IReadOnlyList<string> notes, LdmKeyMap keyMap,
        IReadOnlyList<string> ignoredKeys,
        IReadOnlyList<string>? unresolved = null)
    {
        Unresolved = unresolved ?? Array.Empty<string>();
        CheckpointPath = checkpointPath; ConfigPath = configPath; Kind = variant; PredictionType = predictionType;
        DefaultSize = defaultSize; UNetConfigJson = unetConfigJson; VaeConfigJson = vaeConfigJson;
        TextEncoderConfigJson = textEncoderConfigJson; SchedulerConfigJson = schedulerConfigJson;
        LowResSchedulerConfigJson = lowResSchedulerConfigJson; MaxNoiseLevel = maxNoiseLevel; Notes = notes;
        KeyMap = keyMap; IgnoredKeys = ignoredKeys;
    }

    /// <summary>Full path of the checkpoint.</summary>
    public string CheckpointPath { get; }

    /// <summary>The ldm YAML used, or null when everything was detected.</summary>
    public string? ConfigPath { get; }

    public ModelKind Kind { get; }

    /// <summary><c>epsilon</c> or <c>v_prediction</c> (diffusers' names).</summary>
    public string PredictionType { get; }

    /// <summary>Default output size in pixels (square): 768 for 2.x-v, 512 for the others; the upscaler's output for a
    /// 128-pixel input.</summary>
    public int DefaultSize { get; }

    /// <summary>diffusers <c>unet/config.json</c> content.</summary>
    public string UNetConfigJson { get; }

    /// <summary>diffusers <c>vae/config.json</c> content.</summary>
    public string VaeConfigJson { get; }

    /// <summary>transformers <c>text_encoder/config.json</c> content.</summary>
    public string TextEncoderConfigJson { get; }

    /// <summary>diffusers <c>scheduler/scheduler_config.json</c> content (DDIM, as the released SD 2.x
    /// models ship).</summary>
    public string SchedulerConfigJson { get; }

    /// <summary>Upscaler only: <c>low_res_scheduler/scheduler_config.json</c> (DDPM) for the noise added to the
    /// low-res image.</summary>
    public string? LowResSchedulerConfigJson { get; }

    /// <summary>Upscaler only: the highest noise level the pipeline accepts (<c>max_noise_level</c>).</summary>
    public int? MaxNoiseLevel { get; }

    /// <summary>One line per detection, assumption and piece of evidence, for <c>-Verbose</c>.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>
    /// Settings detection had to guess without any released SD 2.x model to go by (e.g. attention heads for a width
    /// that is not a multiple of 64). Such a plan describes the file, but loading it refuses to run a guessed
    /// architecture: the model's ldm YAML is needed. Empty with a YAML, and for every released SD 2.x layout.
    /// </summary>
    public IReadOnlyList<string> Unresolved { get; }

    /// <summary>Assumptions only (the notes that start with "Assumed").</summary>
    public IEnumerable<string> Assumptions => Notes.Where(n => n.StartsWith("Assumed", StringComparison.Ordinal));

    public LdmKeyMap KeyMap { get; }

    /// <summary>Checkpoint keys that are known and not loaded (unused text block, schedule buffers, EMA
    /// copies, ...).</summary>
    public IReadOnlyList<string> IgnoredKeys { get; }

    /// <summary>
    /// The folder of the CLIP tokenizer bundled with the engine (single files carry no tokenizer):
    /// <c>Data/clip-tokenizer</c>
    /// beside the engine assembly, which in a PowerShell module is not the host's base directory.
    /// </summary>
    public static string TokenizerFolder =>
        Path.Combine(
            Path.GetDirectoryName(typeof(SingleFileModelPlan).Assembly.Location) ?? AppContext.BaseDirectory, "Data",
            "clip-tokenizer");

    /// <summary>Checkpoint key → module key, or null for other components and ignored keys (see
    /// <see cref="LdmKeyMap.KeyMapFor"/>).</summary>
    public Func<string, string?> KeyMapFor(SingleFileComponent component) =>
        KeyMap.KeyMapFor(component, CheckpointPath);

    public UNet2DConditionConfig UNetConfig() =>
        UNet2DConditionConfig.FromJson(UNetConfigJson, $"{CheckpointPath} (unet config)");

    public AutoencoderKLConfig VaeConfig() =>
        AutoencoderKLConfig.FromJson(VaeConfigJson, $"{CheckpointPath} (vae config)");

    public CLIPTextConfig TextEncoderConfig()
    {
        var source = $"{CheckpointPath} (text encoder config)";
        var config = ConfigJson.Parse<CLIPTextConfig>(TextEncoderConfigJson, source);
        config.Validate(source);
        return config;
    }

    /// <summary>The scheduler config as a JSON document (the caller disposes it).</summary>
    public JsonDocument SchedulerConfig() => JsonDocument.Parse(SchedulerConfigJson);
}
