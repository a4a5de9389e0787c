using System.Diagnostics;
using System.Security.Cryptography;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
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
        ModelVariant = ModelVariants.FromUnetInChannels(unet.Config.InChannels, source);
        _contentHash = new Lazy<string>(contentHash, LazyThreadSafetyMode.ExecutionAndPublication);
        MemoryBytes = new torch.nn.Module[] { textEncoder, unet, vae }
            .SelectMany(m => m.parameters().Concat(m.buffers()))
            .Sum(p => p.numel() * p.ElementSize);
    }

    private readonly Lazy<string> _contentHash;

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

    public ModelVariant ModelVariant { get; }
    public string Variant => ModelVariant.DisplayName();
    public long MemoryBytes { get; }

    /// <summary>epsilon, v_prediction or sample, from the scheduler config.</summary>
    public string PredictionType => SchedulerConfig.PredictionType ?? "epsilon";

    /// <summary>2^(VAE levels − 1): 8 for the SD VAE, 4 for the x4 upscaler's.</summary>
    public int VaeScaleFactor => Vae.Config.DownscaleFactor;

    /// <summary>The output size the model was trained for: the UNet's sample_size in pixels.</summary>
    public int DefaultSize => (Unet.Config.SampleSize ?? 64) * VaeScaleFactor;

    /// <summary>
    /// A SHA-256 over the weight files (first 10 hex digits are what AUTOMATIC1111 shows as "Model hash").
    /// Computed on first use, once per loaded model.
    /// </summary>
    public string ContentHash => _contentHash.Value;

    /// <summary>Loads a diffusers pipeline folder (<c>model_index.json</c> plus one folder per component).</summary>
    public static StableDiffusionModel LoadDiffusersFolder(string folder, ComputeTarget target, Action<string>? log = null)
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

        var dtype = target.DType;
        var device = target.Device;
        var clock = Stopwatch.StartNew();
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var textEncoder = CLIPTextModel.FromPretrained(Path.Combine(folder, "text_encoder"), dtype, device);
        log?.Invoke($"Loaded text encoder ({textEncoder.Config.NumHiddenLayers} layers, width {textEncoder.Config.HiddenSize}) in {clock.Elapsed.TotalSeconds:F2} s.");
        clock.Restart();
        var unet = UNet2DConditionModel.FromPretrained(Path.Combine(folder, "unet"), dtype, device);
        log?.Invoke($"Loaded UNet (in_channels {unet.Config.InChannels}, widths [{string.Join(", ", unet.Config.BlockOutChannels)}]) in {clock.Elapsed.TotalSeconds:F2} s.");
        clock.Restart();
        // The x4 upscaler's VAE decodes in float32, as diffusers upcasts it; so does a float16 VAE with force_upcast.
        var vaeConfig = AutoencoderKLConfig.FromFile(Path.Combine(folder, "vae", "config.json"));
        var vaeDType = unet.Config.InChannels == 7 || (dtype == torch.ScalarType.Float16 && vaeConfig.ForceUpcast)
            ? torch.ScalarType.Float32 : dtype;
        var vae = AutoencoderKL.FromPretrained(Path.Combine(folder, "vae"), vaeDType, device);
        log?.Invoke($"Loaded VAE (scaling factor {vae.Config.ScalingFactor}, {vaeDType}) in {clock.Elapsed.TotalSeconds:F2} s.");

        var scheduler = SchedulerConfig.Load(Path.Combine(folder, "scheduler", "scheduler_config.json"));
        var lowResPath = Path.Combine(folder, "low_res_scheduler", "scheduler_config.json");
        var lowRes = File.Exists(lowResPath) ? SchedulerConfig.Load(lowResPath) : null;

        var weightFiles = new[] { "text_encoder", "unet", "vae" }
            .SelectMany(c => Directory.EnumerateFiles(Path.Combine(folder, c), "*.safetensors"))
            .OrderBy(p => p, StringComparer.Ordinal).ToList();
        return new StableDiffusionModel(folder, target, tokenizer, textEncoder, unet, vae, scheduler, lowRes,
            () => HashFiles(weightFiles));
    }

    internal static string HashFiles(IEnumerable<string> files)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            int read;
            while ((read = stream.Read(buffer, 0, buffer.Length)) > 0) sha.AppendData(buffer, 0, read);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    public void Dispose()
    {
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
