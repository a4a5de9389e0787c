using System.Diagnostics;
using PSStableDiffusion.Engine.IO;
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
/// Loads an SD 2.x single-file checkpoint (original ldm layout; safetensors or a torch <c>.ckpt</c>) into a
/// <see cref="StableDiffusionModel"/>: plans it with <see cref="SingleFilePlanner"/>, builds the text encoder, UNet
/// and VAE from the planned configs on <c>meta</c>, and fills them in place with <see cref="SingleFileLoader"/>, as a
/// diffusers folder is loaded (no random initialisation of weights that are then overwritten).
/// </summary>
public static class SingleFileModelLoader
{
    /// <summary>
    /// Loads <paramref name="checkpointPath"/>, planned from the YAML of <paramref name="options"/> (or the one beside
    /// the file, else detection), converting dtype on read; the tokenizer is the one bundled with the engine and the
    /// scheduler configs are the planned ones. Every note of the plan (variant, prediction type and its evidence,
    /// default size, assumptions) goes to <paramref name="log"/>.
    /// </summary>
    /// <remarks>
    /// Depth checkpoints: the MiDaS estimator a released 512-depth checkpoint bundles (<c>depth_model.*</c>) is not
    /// loaded here; <see cref="StableDiffusionModel.GetDepthEstimator"/> loads it when depth-to-image first runs
    /// without a depth map.
    /// </remarks>
    /// <exception cref="FileNotFoundException">The checkpoint or the given YAML does not exist.</exception>
    /// <exception cref="SafeTensorsFormatException">Not valid safetensors.</exception>
    /// <exception cref="Checkpoints.CheckpointFormatException">A malformed, legacy or unsafe torch
    /// checkpoint.</exception>
    /// <exception cref="SingleFileCheckpointException">Not the SD 2.x layout, unknown keys, a YAML that disagrees with
    /// the weights, or (without a YAML) a layout detection cannot settle
    /// (<see cref="SingleFileModelPlan.Unresolved"/>).</exception>
    /// <exception cref="ModelLoadException">The weights do not fit the planned modules.</exception>
    public static StableDiffusionModel Load(
        string checkpointPath, ComputeTarget target, SingleFileOptions? options = null,
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
                $"detection cannot tell {string.Join("; nor ", plan.Unresolved)}. " +
                $"Give the model's ldm YAML (the Config option, or " +
                $"'{Path.GetFileNameWithoutExtension(checkpointPath)}.yaml' beside the checkpoint).");
        log?.Invoke(
            $"Planned {checkpointPath} ({plan.Kind}, {plan.PredictionType}, default " +
            $"{plan.DefaultSize}x{plan.DefaultSize}) in {clock.Elapsed.TotalSeconds:F2} s.");

        var (dtype, device) = (target.DType, target.Device);
        var tokenizer = ClipTokenizer.FromFolder(SingleFileModelPlan.TokenizerFolder);
        var loaded = new List<torch.nn.Module>();
        try
        {
            clock.Restart();
            var textEncoder = Build(new CLIPTextModel(plan.TextEncoderConfig(), dtype, torch.META), file, plan,
                SingleFileComponent.TextEncoder, dtype, device);
            loaded.Add(textEncoder);
            log?.Invoke(
                $"Loaded text encoder ({textEncoder.Config.NumHiddenLayers} layers, width " +
                $"{textEncoder.Config.HiddenSize}) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var unet = Build(
                new UNet2DConditionModel(plan.UNetConfig(), dtype, torch.META), file, plan, SingleFileComponent.UNet,
                dtype, device);
            loaded.Add(unet);
            log?.Invoke(
                $"Loaded UNet (in_channels {unet.Config.InChannels}, widths " +
                $"[{string.Join(", ", unet.Config.BlockOutChannels)}]) in {clock.Elapsed.TotalSeconds:F2} s.");

            clock.Restart();
            var vaeConfig = plan.VaeConfig();
            var vaeDType = StableDiffusionModel.ResolveVaeDType(unet.Config.InChannels, dtype, vaeConfig.ForceUpcast);
            var vae = Build(
                new AutoencoderKL(vaeConfig, vaeDType, torch.META),
                file, plan, SingleFileComponent.Vae, vaeDType, device);
            loaded.Add(vae);
            log?.Invoke(
                $"Loaded VAE (scaling factor {vae.Config.ScalingFactor}, {vaeDType}) in " +
                $"{clock.Elapsed.TotalSeconds:F2} s.");

            var scheduler = SchedulerConfig.Parse(plan.SchedulerConfigJson);
            var lowRes = plan.LowResSchedulerConfigJson is { } lowResJson ? SchedulerConfig.Parse(lowResJson) : null;
            return new StableDiffusionModel(
                checkpointPath, target, tokenizer, textEncoder, unet, vae, scheduler, lowRes,
                () => ModelHashCache.HashModel(new[] { checkpointPath }))
            {
                FileStamps = stamps,
                DepthEstimatorPath = DptKeyMap.HasDepthModel(file) ? checkpointPath : null,
            };
        }
        catch
        {
            foreach (var module in loaded) module.Dispose();
            throw;
        }
    }

    /// <summary>A module built on meta, given its weights from the checkpoint and returned in eval mode; disposed
    /// on failure.</summary>
    private static T Build<T>(T module, ITensorFile file, SingleFileModelPlan plan, SingleFileComponent component,
        torch.ScalarType dtype, torch.Device device) where T : torch.nn.Module
    {
        try
        {
            SingleFileLoader.Materialize(module, file, plan.KeyMap, component, dtype, device);
            module.eval();
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }
}
