using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Text;
using TorchSharp;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The components of one Stable Diffusion 2.x model, loaded once on one device in one dtype, as the engine cache
/// holds them: tokenizer, text encoder, UNet, VAE and the scheduler configs, with the model's hash and its prompt
/// encoder (and its cache). <see cref="DiffusersFolderLoader"/> and <see cref="SingleFileModelLoader"/> make one from a
/// folder or a checkpoint; <see cref="FromComponents"/> from modules built elsewhere.
/// </summary>
public sealed class StableDiffusionModel : ICachedEngine
{
    /// <summary>Bundles loaded components; the model owns and disposes them.</summary>
    /// <param name="contentHash">Computes <see cref="ContentHash"/> on first use.</param>
    internal StableDiffusionModel(
        string source, ComputeTarget target, ClipTokenizer tokenizer, CLIPTextModel textEncoder,
        UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig,
        SchedulerConfig? lowResSchedulerConfig,
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
        MappedWeightBytes = MemoryBudget.MappedBytes(textEncoder, unet, vae);
    }

    private readonly Lazy<string> _contentHash;
    private readonly object _depthEstimatorLock = new();
    private DepthEstimator? _depthEstimator;

    /// <summary>Where this depth model keeps its MiDaS estimator (a <c>depth_estimator/</c> folder or the single file
    /// with <c>depth_model.*</c> weights); null when it has none (or is not a depth model: other kinds
    /// never use one).</summary>
    public string? DepthEstimatorPath
    {
        get => Kind == ModelKind.Depth ? _depthEstimatorPath : null;
        internal init => _depthEstimatorPath = value;
    }

    private readonly string? _depthEstimatorPath;

    /// <summary>Whether depth-to-image can run without a depth map.</summary>
    public bool HasDepthEstimator => DepthEstimatorPath is not null;

    /// <summary>
    /// The model's depth estimator, loaded on first use in the model's dtype and device and kept with the model (the
    /// engine cache holds both) until it is disposed.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no estimator
    /// (<see cref="HasDepthEstimator"/>).</exception>
    public DepthEstimator GetDepthEstimator(Action<string>? log = null)
    {
        var path = DepthEstimatorPath
            ?? throw new InvalidOperationException($"The model '{Source}' has no depth estimator.");
        lock (_depthEstimatorLock)
        {
            // A pipeline run asks for the estimator inside its dispose scope, which would take the weights' tensors and
            // free them when the run ends: the weights are detached from any scope, so they live as long as the model.
            if (_depthEstimator is null)
            {
                var messages = new List<string>(); // logged here, on the caller's thread
                Task<DepthEstimator> loading;
                using (ExecutionContext.SuppressFlow())
                    loading = Task.Run(() => DepthEstimator.Load(path, Target.DType, Target.Device, messages.Add));
                _depthEstimator = loading.GetAwaiter().GetResult();
                foreach (var tensor in _depthEstimator.Model.parameters().Concat(_depthEstimator.Model.buffers()))
                    tensor.DetachFromDisposeScope();
                foreach (var message in messages) log?.Invoke(message);
            }
            else log?.Invoke(
                $"Using the {DepthEstimator.ArchitectureName} depth " +
                $"estimator already loaded from '{_depthEstimator.Source}'.");
            return _depthEstimator;
        }
    }

    /// <summary>Size and time stamp of the weight files when loading began; null for models built in memory.</summary>
    internal WeightFileStamps? FileStamps { get; init; }

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

    /// <summary>
    /// Bytes of the loaded weights that view a mapped file (page cache, which the memory check adds back), counted once
    /// when the model is bundled: the weights do not change while it is loaded, except for a call's LoRA swaps.
    /// </summary>
    internal long MappedWeightBytes { get; }

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

    /// <summary>The x4 upscaler's VAE decodes in float32, as diffusers upcasts it; so does a float16 VAE with
    /// force_upcast.</summary>
    internal static torch.ScalarType ResolveVaeDType(int unetInChannels, torch.ScalarType dtype, bool forceUpcast) =>
        unetInChannels == 7 || (dtype == torch.ScalarType.Float16 && forceUpcast) ? torch.ScalarType.Float32 : dtype;

    public void Dispose()
    {
        _depthEstimator?.Dispose();
        PromptEncoder.Dispose();
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
