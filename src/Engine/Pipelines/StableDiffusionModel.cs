using System.Diagnostics;
using System.Security.Cryptography;
using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Text;
using TorchSharp;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The components of one Stable Diffusion 2.x model, loaded once on one device in one dtype, as the engine cache
/// holds them: tokenizer, text encoder, UNet, VAE and the scheduler configs.
/// </summary>
public sealed class StableDiffusionModel : ICachedEngine
{
    private StableDiffusionModel(string source, ComputeTarget target, ClipTokenizer tokenizer, CLIPTextModel textEncoder,
        UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig, SchedulerConfig? lowResSchedulerConfig,
        Func<string> contentHash)
    {
        Source = source;
        Target = target;
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
        Unet = unet;
        Vae = vae;
        SchedulerConfig = schedulerConfig;
        LowResSchedulerConfig = lowResSchedulerConfig;
        Kind = ModelKinds.FromUnetInChannels(unet.Config.InChannels, source);
        VaeDType = vae.parameters().First().dtype;
        PromptEncoder = new PromptEncoder(tokenizer, textEncoder, target.Device);
        _contentHash = new Lazy<string>(contentHash, LazyThreadSafetyMode.ExecutionAndPublication);
        MemoryBytes = new torch.nn.Module[] { textEncoder, unet, vae }
            .SelectMany(m => m.parameters().Concat(m.buffers()))
            .Sum(p => p.numel() * p.ElementSize);
    }

    private readonly Lazy<string> _contentHash;

    /// <summary>Size and time stamp of the weight files when loading began; null for models built in memory.</summary>
    internal WeightFileStamps? FileStamps { get; private init; }

    /// <summary>Which weight file changed since the load (the engine cache then reloads); null when none did.</summary>
    public string? ChangedSinceLoad() => FileStamps?.Changes();

    /// <summary>The folder or file the model came from, as given to the loader (a full path).</summary>
    public string Source { get; }
    public ComputeTarget Target { get; }
    public ClipTokenizer Tokenizer { get; }
    public CLIPTextModel TextEncoder { get; }
    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL Vae { get; }

    /// <summary>The scheduler config the model ships (diffusers <c>scheduler/scheduler_config.json</c>).</summary>
    public SchedulerConfig SchedulerConfig { get; }

    /// <summary>The x4 upscaler's DDPM scheduler that noises the low-res image.</summary>
    public SchedulerConfig? LowResSchedulerConfig { get; }

    /// <summary>Prompts → text conditioning, with this model's cache of recent prompts.</summary>
    public PromptEncoder PromptEncoder { get; }

    public ModelKind Kind { get; }
    public string KindName => Kind.DisplayName();
    public long MemoryBytes { get; }

    /// <summary>epsilon, v_prediction or sample, from the scheduler config.</summary>
    public string PredictionType => SchedulerConfig.PredictionType ?? "epsilon";

    /// <summary>The VAE's compute dtype: the model's, except float32 for the x4 upscaler's VAE and for a float16 VAE
    /// whose config asks for force_upcast (as diffusers upcasts them).</summary>
    public torch.ScalarType VaeDType { get; }

    /// <summary>2^(VAE levels − 1): 8 for the SD VAE, 4 for the x4 upscaler's.</summary>
    public int VaeScaleFactor => Vae.Config.DownscaleFactor;

    /// <summary>The output size the model was trained for: the UNet's sample_size in pixels.</summary>
    public int DefaultSize => (Unet.Config.SampleSize ?? 64) * VaeScaleFactor;

    /// <summary>
    /// A SHA-256 over the weight files (first 10 hex digits are what AUTOMATIC1111 shows as "Model hash").
    /// Computed on first use, once per loaded model.
    /// </summary>
    public string ContentHash => _contentHash.Value;

    /// <summary>
    /// Bundles components built elsewhere (random weights for the benchmark, or an embedding host's own loading) into
    /// a model the pipelines run. The model owns and disposes them.
    /// </summary>
    public static StableDiffusionModel FromComponents(string source, ComputeTarget target, ClipTokenizer tokenizer,
        CLIPTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig,
        SchedulerConfig? lowResSchedulerConfig = null) =>
        new(source, target, tokenizer, textEncoder, unet, vae, schedulerConfig, lowResSchedulerConfig, () => "");

    /// <summary>Loads a diffusers pipeline folder (<c>model_index.json</c> plus one folder per component).</summary>
    public static StableDiffusionModel LoadDiffusersFolder(string folder, ComputeTarget target, Action<string>? log = null) =>
        LoadDiffusersFolder(folder, target, variant: null, predictionType: null, log);

    /// <summary>
    /// Loads a diffusers pipeline folder. <paramref name="variant"/> (e.g. <c>fp16</c>) picks
    /// <c>*.{variant}.safetensors</c> weights where a component has them, falling back to the plain ones as diffusers
    /// does; without it the plain weights are used (or a folder's only variant, when it has no plain weights).
    /// Sharded weights (<c>*-00001-of-0000N.safetensors</c>) load as one set. <paramref name="predictionType"/>
    /// overrides the scheduler config's <c>prediction_type</c>. Weights are converted to the target dtype on read.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">No model_index.json, or a component without weights.</exception>
    /// <exception cref="InvalidDataException">A component folder is missing.</exception>
    /// <exception cref="NotSupportedException">A component has only pickled <c>.bin</c> weights.</exception>
    /// <exception cref="ModelLoadException">Weights that do not fit the component's config.</exception>
    public static StableDiffusionModel LoadDiffusersFolder(string folder, ComputeTarget target, string? variant, string? predictionType,
        Action<string>? log = null)
    {
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        var indexPath = Path.Combine(folder, "model_index.json");
        if (!File.Exists(indexPath))
            throw new FileNotFoundException(
                $"'{folder}' is not a diffusers model folder: it has no model_index.json.", indexPath);
        foreach (var component in new[] { "tokenizer", "text_encoder", "unet", "vae", "scheduler" })
        {
            if (!Directory.Exists(Path.Combine(folder, component)))
                throw new InvalidDataException($"'{folder}' lacks the '{component}' component that a Stable Diffusion pipeline needs.");
        }
        var prediction = predictionType is null ? null : SingleFilePlanner.NormalizePredictionType(predictionType);
        var textFiles = WeightFiles(Path.Combine(folder, "text_encoder"), "model", variant, log);
        var unetFiles = WeightFiles(Path.Combine(folder, "unet"), "diffusion_pytorch_model", variant, log);
        var vaeFiles = WeightFiles(Path.Combine(folder, "vae"), "diffusion_pytorch_model", variant, log);
        var stamps = WeightFileStamps.Take(textFiles.Concat(unetFiles).Concat(vaeFiles));

        var dtype = target.DType;
        var device = target.Device;
        var clock = Stopwatch.StartNew();
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var loaded = new List<torch.nn.Module>();
        try
        {
            var textFolder = Path.Combine(folder, "text_encoder");
            var textEncoder = IsPlain(textFiles, textFolder, "model")
                ? CLIPTextModel.FromPretrained(textFolder, dtype, device)
                : Build(new CLIPTextModel(CLIPTextConfig.Load(Path.Combine(textFolder, "config.json")), dtype, device), textFiles,
                    key => CLIPTextModel.IgnoredCheckpointKeys.Contains(key) ? null : key);
            loaded.Add(textEncoder);
            log?.Invoke($"Loaded text encoder ({textEncoder.Config.NumHiddenLayers} layers, width {textEncoder.Config.HiddenSize}) in {clock.Elapsed.TotalSeconds:F2} s.");
            clock.Restart();
            var unetFolder = Path.Combine(folder, "unet");
            var unet = IsPlain(unetFiles, unetFolder, "diffusion_pytorch_model")
                ? UNet2DConditionModel.FromPretrained(unetFolder, dtype, device)
                : Build(new UNet2DConditionModel(UNet2DConditionConfig.FromFile(Path.Combine(unetFolder, "config.json")), device, dtype), unetFiles);
            loaded.Add(unet);
            log?.Invoke($"Loaded UNet (in_channels {unet.Config.InChannels}, widths [{string.Join(", ", unet.Config.BlockOutChannels)}]) in {clock.Elapsed.TotalSeconds:F2} s.");
            clock.Restart();
            // The x4 upscaler's VAE decodes in float32, as diffusers upcasts it; so does a float16 VAE with force_upcast.
            var vaeFolder = Path.Combine(folder, "vae");
            var vaeConfig = AutoencoderKLConfig.FromFile(Path.Combine(vaeFolder, "config.json"));
            var vaeDType = ResolveVaeDType(unet.Config.InChannels, dtype, vaeConfig.ForceUpcast);
            var vae = IsPlain(vaeFiles, vaeFolder, "diffusion_pytorch_model")
                ? AutoencoderKL.FromPretrained(vaeFolder, vaeDType, device)
                : Build(new AutoencoderKL(vaeConfig, device, vaeDType), vaeFiles);
            loaded.Add(vae);
            log?.Invoke($"Loaded VAE (scaling factor {vae.Config.ScalingFactor}, {vaeDType}) in {clock.Elapsed.TotalSeconds:F2} s.");

            var scheduler = SchedulerConfig.Load(Path.Combine(folder, "scheduler", "scheduler_config.json"));
            if (prediction is not null)
            {
                log?.Invoke($"Prediction type {prediction} (given; the scheduler config says {scheduler.PredictionType ?? "epsilon"}).");
                scheduler = scheduler with { PredictionType = prediction };
            }
            var lowResPath = Path.Combine(folder, "low_res_scheduler", "scheduler_config.json");
            var lowRes = File.Exists(lowResPath) ? SchedulerConfig.Load(lowResPath) : null;

            var weightFiles = textFiles.Concat(unetFiles).Concat(vaeFiles).OrderBy(p => p, StringComparer.Ordinal).ToList();
            return new StableDiffusionModel(folder, target, tokenizer, textEncoder, unet, vae, scheduler, lowRes,
                () => HashWithCache(weightFiles)) { FileStamps = stamps };
        }
        catch
        {
            foreach (var module in loaded) module.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads an SD 2.x single-file checkpoint (original ldm layout; safetensors or a torch <c>.ckpt</c>): plans it with
    /// <see cref="SingleFilePlanner"/> (the YAML of <paramref name="options"/>, or the one beside the file, else
    /// detection), builds the text encoder, UNet and VAE from the planned configs in the target dtype and device, loads
    /// them with <see cref="SingleFileLoader"/> (converting dtype on read), and takes the tokenizer bundled with the
    /// engine and the planned scheduler configs. Every note of the plan (variant, prediction type and its evidence,
    /// default size, assumptions) goes to <paramref name="log"/>.
    /// </summary>
    /// <remarks>
    /// Depth checkpoints: the MiDaS estimator a released 512-depth checkpoint bundles (<c>depth_model.*</c>) is skipped;
    /// depth maps must be passed in (the pipeline does not estimate depth).
    /// </remarks>
    /// <exception cref="FileNotFoundException">The checkpoint or the given YAML does not exist.</exception>
    /// <exception cref="SafeTensorsFormatException">Not valid safetensors.</exception>
    /// <exception cref="Checkpoints.CheckpointFormatException">A malformed, legacy or unsafe torch checkpoint.</exception>
    /// <exception cref="SingleFileCheckpointException">Not the SD 2.x layout, unknown keys, a YAML that disagrees with the
    /// weights, or (without a YAML) a layout detection cannot settle (<see cref="SingleFileModelPlan.Unresolved"/>).</exception>
    /// <exception cref="ModelLoadException">The weights do not fit the planned modules.</exception>
    public static StableDiffusionModel LoadSingleFile(string checkpointPath, ComputeTarget target, SingleFileOptions? options = null,
        Action<string>? log = null)
    {
        checkpointPath = Path.GetFullPath(checkpointPath);
        var clock = Stopwatch.StartNew();
        var stamps = WeightFileStamps.Take(new[] { checkpointPath });
        using var file = CheckpointFiles.Open(checkpointPath);
        var plan = SingleFilePlanner.Plan(file, options);
        foreach (var note in plan.Notes) log?.Invoke(note);
        if (plan.Unresolved.Count > 0)
            throw new SingleFileCheckpointException(checkpointPath,
                $"detection cannot tell {string.Join("; nor ", plan.Unresolved)}. Give the model's ldm YAML (the Config option, or " +
                $"'{Path.GetFileNameWithoutExtension(checkpointPath)}.yaml' beside the checkpoint).");
        log?.Invoke($"Planned {checkpointPath} ({plan.Kind}, {plan.PredictionType}, default {plan.DefaultSize}x{plan.DefaultSize}) in {clock.Elapsed.TotalSeconds:F2} s.");

        var dtype = target.DType;
        var device = target.Device;
        var tokenizer = ClipTokenizer.FromFolder(SingleFileModelPlan.TokenizerFolder);
        var loaded = new List<torch.nn.Module>();
        try
        {
            clock.Restart();
            var textEncoder = new CLIPTextModel(plan.TextEncoderConfig(), dtype, device);
            loaded.Add(textEncoder);
            SingleFileLoader.Load(textEncoder, file, plan.KeyMap, SingleFileComponent.TextEncoder);
            Freeze(textEncoder);
            log?.Invoke($"Loaded text encoder ({textEncoder.Config.NumHiddenLayers} layers, width {textEncoder.Config.HiddenSize}) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var unet = new UNet2DConditionModel(plan.UNetConfig(), device, dtype);
            loaded.Add(unet);
            SingleFileLoader.Load(unet, file, plan.KeyMap, SingleFileComponent.UNet);
            Freeze(unet);
            log?.Invoke($"Loaded UNet (in_channels {unet.Config.InChannels}, widths [{string.Join(", ", unet.Config.BlockOutChannels)}]) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var vaeConfig = plan.VaeConfig();
            var vaeDType = ResolveVaeDType(unet.Config.InChannels, dtype, vaeConfig.ForceUpcast);
            var vae = new AutoencoderKL(vaeConfig, device, vaeDType);
            loaded.Add(vae);
            SingleFileLoader.Load(vae, file, plan.KeyMap, SingleFileComponent.Vae);
            Freeze(vae);
            log?.Invoke($"Loaded VAE (scaling factor {vae.Config.ScalingFactor}, {vaeDType}) in {clock.Elapsed.TotalSeconds:F2} s.");

            var scheduler = SchedulerConfig.Parse(plan.SchedulerConfigJson);
            var lowRes = plan.LowResSchedulerConfigJson is { } lowResJson ? SchedulerConfig.Parse(lowResJson) : null;
            return new StableDiffusionModel(checkpointPath, target, tokenizer, textEncoder, unet, vae, scheduler, lowRes,
                () => HashWithCache(new[] { checkpointPath })) { FileStamps = stamps };
        }
        catch
        {
            foreach (var module in loaded) module.Dispose();
            throw;
        }
    }

    /// <summary>The x4 upscaler's VAE decodes in float32, as diffusers upcasts it; so does a float16 VAE with force_upcast.</summary>
    private static torch.ScalarType ResolveVaeDType(int unetInChannels, torch.ScalarType dtype, bool forceUpcast) =>
        unetInChannels == 7 || (dtype == torch.ScalarType.Float16 && forceUpcast) ? torch.ScalarType.Float32 : dtype;

    private static void Freeze(torch.nn.Module module)
    {
        module.eval();
        foreach (var parameter in module.parameters()) parameter.requires_grad = false;
    }

    /// <summary>Whether the chosen weights are exactly the component's plain <c>{baseName}.safetensors</c>.</summary>
    private static bool IsPlain(IReadOnlyList<string> files, string componentFolder, string baseName) =>
        files.Count == 1 && files[0] == Path.Combine(componentFolder, baseName + ".safetensors");

    /// <summary>A freshly built module filled strictly from <paramref name="files"/> (variant or sharded weights).</summary>
    private static T Build<T>(T module, IReadOnlyList<string> files, Func<string, string?>? keyMap = null) where T : torch.nn.Module
    {
        try
        {
            using (torch.no_grad()) StateDictLoader.Load(module, files, keyMap);
            Freeze(module);
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The safetensors weights of one component folder: the <paramref name="variant"/>'s set, else the plain set, else
    /// (no variant asked) the folder's only variant set. A set is one file or the shards of one.
    /// </summary>
    private static IReadOnlyList<string> WeightFiles(string componentFolder, string baseName, string? variant, Action<string>? log)
    {
        var sets = Directory.EnumerateFiles(componentFolder, "*.safetensors")
            .Select(path => (Path: path, Info: DiffusersFileSelection.Describe(Path.GetFileName(path))))
            .Where(f => f.Info is { Format: "safetensors" })
            .GroupBy(f => f.Info!.Value.Variant ?? "")
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(f => f.Path).Order(StringComparer.Ordinal).ToList());
        if (variant is not null)
        {
            if (sets.TryGetValue(variant, out var wanted)) return wanted;
            if (sets.TryGetValue("", out var plainFallback))
            {
                log?.Invoke($"'{componentFolder}' has no {variant} weights; using {Path.GetFileName(plainFallback[0])}.");
                return plainFallback;
            }
        }
        else
        {
            if (sets.TryGetValue("", out var plain)) return plain;
            if (sets.Count == 1)
            {
                var only = sets.Single();
                log?.Invoke($"'{componentFolder}' has only {only.Key} weights; using them.");
                return only.Value;
            }
        }
        bool pickles = Directory.EnumerateFiles(componentFolder, "*.bin").Any();
        if (pickles)
            throw new NotSupportedException(
                $"'{componentFolder}' has only pickled .bin weights; this engine loads safetensors. Save the model with safe_serialization=True, " +
                "or use the repository's safetensors weights.");
        var expected = Path.Combine(componentFolder, baseName + (variant is null ? "" : "." + variant) + ".safetensors");
        throw new FileNotFoundException(
            sets.Count == 0
                ? $"Weights file not found: '{expected}'."
                : $"Weights file not found: '{expected}' (the folder has the variants {string.Join(", ", sets.Keys.Select(k => k.Length == 0 ? "(plain)" : k))}; pass one as the variant).",
            expected);
    }

    // The session's first image records the model hash; the cache spares re-reading gigabytes in every new session.
    private static string HashWithCache(IReadOnlyList<string> files) =>
        ModelHashCache.Default.GetOrCompute(files, () => HashFiles(files));

    internal static string HashFiles(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.SequentialScan);
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    public void Dispose()
    {
        PromptEncoder.Dispose();
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
