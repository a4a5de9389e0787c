using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.SingleFile;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// The MiDaS DPT-Hybrid depth estimator with its image processor, as stable-diffusion-2-depth ships it: a diffusers
/// folder's <c>depth_estimator/</c> + <c>feature_extractor/</c>, a transformers DPT folder alone, or the
/// <c>depth_model.*</c> weights of a single-file depth checkpoint. It runs in the dtype and on the device it was
/// loaded with. Its output is relative inverse depth (larger = nearer), as diffusers feeds it to the depth UNet.
/// </summary>
public sealed class DepthEstimator : ICachedEngine
{
    private long? _memoryBytes;

    /// <summary>How records and messages name the estimator.</summary>
    public const string ArchitectureName = "DPT-Hybrid";

    private readonly Lazy<string> _hash;

    private DepthEstimator(
        DPTForDepthEstimation model, DPTImageProcessor processor, string source, ScalarType dtype, Device device,
        IReadOnlyList<string> weightFiles)
    {
        Model = model;
        Processor = processor;
        Source = source;
        DType = dtype;
        Device = device;
        _hash = new Lazy<string>(() => weightFiles.Count == 0 ? "" : ModelHashCache.HashModel(weightFiles),
            LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public DPTForDepthEstimation Model { get; }
    public DPTImageProcessor Processor { get; }

    /// <summary>The folder or file the weights came from.</summary>
    public string Source { get; }

    public ScalarType DType { get; }
    public Device Device { get; }

    /// <summary>Bytes of weights and buffers (a DPT folder alone is cached in the engine cache on its own).</summary>
    public long MemoryBytes =>
        _memoryBytes ??= Model.parameters().Concat(Model.buffers()).Sum(p => p.numel() * p.ElementSize);

    /// <summary>How the engine cache lists it.</summary>
    public string KindName => $"depth estimator ({ArchitectureName})";

    /// <summary>SHA-256 of the weights file (the whole checkpoint for a single file), hex.</summary>
    public string Hash => _hash.Value;

    /// <summary>Where <paramref name="path"/> keeps an estimator, or null: a diffusers folder with
    /// <c>depth_estimator/</c>, a DPT folder (<c>config.json</c> + <c>model.safetensors</c>), or a checkpoint with
    /// <c>depth_model.model.*</c> keys.</summary>
    public static string? Locate(string path)
    {
        if (Directory.Exists(path))
        {
            var sub = Path.Combine(path, "depth_estimator");
            if (File.Exists(Path.Combine(sub, "config.json"))
                    && File.Exists(Path.Combine(sub, DPTForDepthEstimation.WeightsFileName)))
                return sub;
            return File.Exists(Path.Combine(path, "config.json"))
                && File.Exists(Path.Combine(path, DPTForDepthEstimation.WeightsFileName)) ? path : null;
        }
        if (!File.Exists(path)) return null;
        using var file = CheckpointFiles.Open(path);
        return DptKeyMap.HasDepthModel(file) ? path : null;
    }

    /// <summary>An estimator of modules built in memory (the benchmark's random full-size DPT-Hybrid); it has no
    /// weight files, so its <see cref="Hash"/> is empty. It owns <paramref name="model"/>.</summary>
    public static DepthEstimator FromComponents(
        DPTForDepthEstimation model, DPTImageProcessor processor, string source, ScalarType dtype,
        Device device) =>
        new(model, processor, source, dtype, device, Array.Empty<string>());

    /// <summary>Loads the estimator <see cref="Locate"/> finds in <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No estimator there (the message says what was looked for).</exception>
    /// <exception cref="ModelLoadException">The weights do not fit the config.</exception>
    /// <exception cref="NotSupportedException">The config is not a DPT-Hybrid the engine implements.</exception>
    public static DepthEstimator Load(string path, ScalarType dtype, Device device, Action<string>? log = null)
    {
        var located = Locate(path) ?? throw new FileNotFoundException(
            $"No depth estimator in '{path}': expected a 'depth_estimator' " +
            $"folder (config.json + {DPTForDepthEstimation.WeightsFileName}), " +
            $"a DPT folder, or a single-file depth checkpoint with '{DptKeyMap.Prefix}*' weights.", path);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var estimator = Directory.Exists(located)
            ? FromFolder(located, dtype, device) : FromSingleFile(located, dtype, device);
        log?.Invoke(
            $"Loaded the {ArchitectureName} depth estimator from '{located}' " +
            $"({estimator.Model.Config.NumHiddenLayers} ViT layers, " +
            $"width {estimator.Model.Config.HiddenSize}, {estimator.Model.Config.ImageSize}² " +
            $"input, {dtype}) in {clock.Elapsed.TotalSeconds:F2} s.");
        return estimator;
    }

    private static DepthEstimator FromFolder(string folder, ScalarType dtype, Device device)
    {
        // diffusers keeps the processor in a sibling feature_extractor/; a transformers DPT folder keeps
        // it beside the weights.
        var sibling = Path.Combine(
            Path.GetDirectoryName(Path.GetFullPath(folder))!, "feature_extractor", "preprocessor_config.json");
        var beside = Path.Combine(folder, "preprocessor_config.json");
        var processorPath = File.Exists(beside) ? beside : File.Exists(sibling) ? sibling
            : throw new FileNotFoundException(
                $"No preprocessor_config.json for the depth estimator in " +
                $"'{folder}' (looked beside it and in '../feature_extractor').", sibling);
        var processor = new DPTImageProcessor(DPTImageProcessorConfig.FromFile(processorPath));
        var model = DPTForDepthEstimation.FromPretrained(folder, dtype, device);
        return new DepthEstimator(model, processor, Path.GetFullPath(folder), dtype, device,
            new[] { Path.GetFullPath(Path.Combine(folder, DPTForDepthEstimation.WeightsFileName)) });
    }

    private static DepthEstimator FromSingleFile(string checkpointPath, ScalarType dtype, Device device)
    {
        checkpointPath = Path.GetFullPath(checkpointPath);
        using var file = CheckpointFiles.Open(checkpointPath);
        var (config, processorConfig) = DptSingleFileConfig.Infer(file);
        var model = new DPTForDepthEstimation(config, torch.META, dtype);
        try
        {
            DptKeyMap.Load(model, file, dtype, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return new DepthEstimator(
            model, new DPTImageProcessor(processorConfig), checkpointPath, dtype, device, new[] { checkpointPath });
    }

    /// <summary>The estimator's prediction for <paramref name="image"/> at the processor's size.</summary>
    /// <returns>predicted_depth, [1, h, w] in the estimator's dtype on its device</returns>
    public Tensor Predict(SDImage image)
    {
        using var scope = NewDisposeScope();
        var pixels = Processor.Preprocess(image).to(DType, Device); // [1, 3, h, w]
        return Model.Forward(pixels).MoveToOuterDisposeScope();
    }

    /// <summary>The prediction resized to <paramref name="height"/> × <paramref name="width"/> (bicubic,
    /// <c>align_corners=False</c>, as transformers' depth example and diffusers' depth pipeline resize it),
    /// in float32.</summary>
    /// <returns>[1, height, width]</returns>
    public Tensor PredictAt(SDImage image, int height, int width)
    {
        using var scope = NewDisposeScope();
        var depth = Predict(image).to(ScalarType.Float32).unsqueeze(1); // [1, 1, h, w]
        // [1, 1, H, W]
        var resized = nn.functional.interpolate(
            depth, new long[] { height, width }, mode: InterpolationMode.Bicubic, align_corners: false);
        return resized.squeeze(1).MoveToOuterDisposeScope();
    }

    public void Dispose() => Model.Dispose();
}
