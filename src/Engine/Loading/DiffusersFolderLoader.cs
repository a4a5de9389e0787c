using System.Diagnostics;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Text;
using TorchSharp;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Loads a diffusers pipeline folder (<c>model_index.json</c> plus one folder per component, as diffusers'
/// <c>save_pretrained</c> writes it and the hub cache holds it) into a <see cref="StableDiffusionModel"/>.
/// </summary>
public static class DiffusersFolderLoader
{
    private static readonly string[] RequiredComponents = { "tokenizer", "text_encoder", "unet", "vae", "scheduler" };

    /// <summary>Loads the folder's plain weights with its own prediction type.</summary>
    public static StableDiffusionModel Load(string folder, ComputeTarget target, Action<string>? log = null) =>
        Load(folder, target, variant: null, predictionType: null, log);

    /// <summary>
    /// Loads a diffusers pipeline folder. Each component's weights are chosen by <see cref="WeightFileSelection"/>:
    /// <paramref name="variant"/> (e.g. <c>fp16</c>) picks <c>*.{variant}.safetensors</c> where a component has them,
    /// else its plain weights, as diffusers does; without a variant only plain weights count. Sharded weights
    /// (<c>*-00001-of-0000N.safetensors</c>) load as one set. Every component is built on <c>meta</c> and filled
    /// straight from its files, converted to the target dtype on read. <paramref name="predictionType"/> overrides
    /// the scheduler config's <c>prediction_type</c>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">No model_index.json, or a component without weights it
    /// can use.</exception>
    /// <exception cref="InvalidDataException">A component folder is missing.</exception>
    /// <exception cref="ModelLoadException">Weights that do not fit the component's config.</exception>
    public static StableDiffusionModel Load(
        string folder, ComputeTarget target, string? variant, string? predictionType,
        Action<string>? log = null)
    {
        folder = CheckFolder(folder);
        var prediction = predictionType is null ? null : SingleFilePlanner.NormalizePredictionType(predictionType);
        var textFolder = Path.Combine(folder, "text_encoder");
        var unetFolder = Path.Combine(folder, "unet");
        var vaeFolder = Path.Combine(folder, "vae");
        var textFiles = WeightFiles(textFolder, "model", variant, log);
        var unetFiles = WeightFiles(unetFolder, "diffusion_pytorch_model", variant, log);
        var vaeFiles = WeightFiles(vaeFolder, "diffusion_pytorch_model", variant, log);
        var stamps = WeightFileStamps.Take(textFiles.Concat(unetFiles).Concat(vaeFiles));

        var (dtype, device) = (target.DType, target.Device);
        var clock = Stopwatch.StartNew();
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var loaded = new List<torch.nn.Module>();
        try
        {
            var textConfig = CLIPTextConfig.Load(Path.Combine(textFolder, "config.json"));
            var textEncoder = PretrainedWeights.Load(
                "Text encoder", on => new CLIPTextModel(textConfig, dtype, on), textFiles,
                dtype, device, CLIPTextModel.IgnoredCheckpointKeys);
            loaded.Add(textEncoder);
            log?.Invoke(
                $"Loaded text encoder ({textEncoder.Config.NumHiddenLayers} layers, width " +
                $"{textEncoder.Config.HiddenSize}) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var unetConfig = UNet2DConditionConfig.FromFile(Path.Combine(unetFolder, "config.json"));
            var unet = PretrainedWeights.Load(
                "UNet", on => new UNet2DConditionModel(unetConfig, dtype, on), unetFiles, dtype, device);
            loaded.Add(unet);
            log?.Invoke(
                $"Loaded UNet (in_channels {unet.Config.InChannels}, widths " +
                $"[{string.Join(", ", unet.Config.BlockOutChannels)}]) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var vaeConfig = AutoencoderKLConfig.FromFile(Path.Combine(vaeFolder, "config.json"));
            var vaeDType = StableDiffusionModel.ResolveVaeDType(unet.Config.InChannels, dtype, vaeConfig.ForceUpcast);
            var vae = PretrainedWeights.Load(
                "VAE", on => new AutoencoderKL(vaeConfig, vaeDType, on), vaeFiles, vaeDType, device);
            loaded.Add(vae);
            log?.Invoke(
                $"Loaded VAE (scaling factor {vae.Config.ScalingFactor}, {vaeDType}) in " +
                $"{clock.Elapsed.TotalSeconds:F2} s.");

            var (scheduler, lowRes) = SchedulerConfigs(folder, prediction, log);
            var weightFiles = textFiles.Concat(unetFiles).Concat(vaeFiles).Order(StringComparer.Ordinal).ToList();
            return new StableDiffusionModel(folder, target, tokenizer, textEncoder, unet, vae, scheduler, lowRes,
                () => ModelHashCache.HashModel(weightFiles))
            {
                FileStamps = stamps,
                DepthEstimatorPath = DepthEstimator.Locate(folder),
            };
        }
        catch
        {
            foreach (var module in loaded) module.Dispose();
            throw;
        }
    }

    /// <summary>The full path of a folder that has model_index.json and every component a pipeline needs.</summary>
    private static string CheckFolder(string folder)
    {
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Model folder '{folder}' does not exist.");
        var indexPath = Path.Combine(folder, "model_index.json");
        if (!File.Exists(indexPath))
            throw new FileNotFoundException(
                $"'{folder}' is not a diffusers model folder: it has no model_index.json.", indexPath);
        foreach (var component in RequiredComponents)
        {
            if (!Directory.Exists(Path.Combine(folder, component)))
                throw new InvalidDataException(
                    $"'{folder}' lacks the '{component}' component that a Stable Diffusion pipeline needs.");
        }
        return folder;
    }

    /// <summary>The scheduler config (with <paramref name="prediction"/> when given) and the upscaler's
    /// low-res one.</summary>
    private static (SchedulerConfig Scheduler, SchedulerConfig? LowRes) SchedulerConfigs(
        string folder, string? prediction,
        Action<string>? log)
    {
        var scheduler = SchedulerConfig.Load(Path.Combine(folder, "scheduler", "scheduler_config.json"));
        if (prediction is not null)
        {
            log?.Invoke(
                $"Prediction type {prediction} (given; the scheduler config says " +
                $"{scheduler.PredictionType ?? "epsilon"}).");
            scheduler = scheduler with { PredictionType = prediction };
        }
        var lowResPath = Path.Combine(folder, "low_res_scheduler", "scheduler_config.json");
        return (scheduler, File.Exists(lowResPath) ? SchedulerConfig.Load(lowResPath) : null);
    }

    /// <summary>
    /// The weight files of one component folder that <see cref="WeightFileSelection"/> chooses (one file, or the
    /// shards of one; safetensors, else pickled <c>.bin</c> read by the restricted unpickler), as full paths.
    /// </summary>
    /// <exception cref="FileNotFoundException">No weights the rule accepts (the message names the variants
    /// there are).</exception>
    internal static IReadOnlyList<string> WeightFiles(
        string componentFolder, string baseName, string? variant, Action<string>? log)
    {
        var names = Directory.EnumerateFiles(componentFolder).Select(Path.GetFileName).OfType<string>().ToList();
        var chosen = WeightFileSelection.Select(names, variant);
        if (chosen is not null)
        {
            // The index JSON of a sharded set names the shards; the shards themselves are what is read.
            var files = chosen.Where(f => !f.EndsWith(".json", StringComparison.Ordinal))
                .Select(f => Path.Combine(componentFolder, f))
                .ToList();
            if (variant is not null && WeightFileSelection.Describe(chosen[0])?.Variant != variant)
                log?.Invoke($"'{componentFolder}' has no {variant} weights; using {Path.GetFileName(files[0])}.");
            if (files[0].EndsWith(".bin", StringComparison.Ordinal))
                log?.Invoke(
                    $"'{componentFolder}' has no safetensors weights; " +
                    $"reading the pickled {Path.GetFileName(files[0])} " +
                    "with the restricted unpickler (tensors and plain containers only, no code runs).");
            return files;
        }
        var variants = WeightFileSelection.Variants(names);
        var expected = Path.Combine(
            componentFolder, baseName + (variant is null ? "" : "." + variant) + ".safetensors");
        throw new FileNotFoundException(
            variants.Count == 0
                ? $"Weights file not found: '{expected}'."
                : $"Weights file not found: '{expected}' (the folder has the variants " +
                    $"{string.Join(", ", variants.Select(k => k.Length == 0 ? "(plain)" : k))}; pass one as the " +
                    $"variant).",
            expected);
    }
}
