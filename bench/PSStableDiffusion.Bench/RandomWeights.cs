using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.SingleFile;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Bench;

/// <summary>
/// Full-size SD 2.1 768-v (and x4 upscaler) architectures with random weights, built on the meta device and then
/// given storage tensor by tensor (no default init pass). Weights are LeCun-uniform, U(±sqrt(3/fan_in)), so every
/// linear/conv keeps its input's variance and activations stay O(1) (norms are 1/0, embeddings N(0, 1)).
/// </summary>
internal static class RandomWeights
{
    public const string UNetConfigFile = "sd21-768-v.unet.json";
    public const string VaeConfigFile = "sd21-768-v.vae.json";
    public const string TextEncoderConfigFile = "sd21-text_encoder.json";

    /// <summary>Replaces every parameter of a meta-built <paramref name="module"/> by random values of <paramref name="dtype"/> on the CPU.</summary>
    public static T Materialize<T>(T module, ScalarType dtype, ulong seed) where T : nn.Module
    {
        using var noGrad = torch.no_grad();
        var generator = new torch.Generator(seed);
        var owners = ModuleParameters.Owners(module);
        foreach (var (key, meta) in module.named_parameters().ToList())
        {
            var owner = owners[key.Contains('.') ? key[..key.LastIndexOf('.')] : ""];
            var value = torch.empty(meta.shape, ScalarType.Float32);
            bool isWeight = key.EndsWith("weight", StringComparison.Ordinal);
            switch (owner)
            {
                case GroupNorm or LayerNorm:
                    if (isWeight) value.fill_(1.0); else value.zero_();
                    break;
                case Embedding:
                    value.normal_(0.0, 1.0, generator);
                    break;
                default:
                    long fanIn = isWeight ? meta.shape.Skip(1).Aggregate(1L, (a, b) => a * b) : meta.shape[0];
                    double bound = isWeight ? Math.Sqrt(3.0 / fanIn) : 1.0 / Math.Sqrt(fanIn);
                    value.uniform_(-bound, bound, generator);
                    break;
            }
            var converted = dtype == ScalarType.Float32 ? value : value.to(dtype);
            if (!ReferenceEquals(converted, value)) value.Dispose();
            ModuleParameters.Replace(owners, key, converted);
        }
        return module;
    }

    public static UNet2DConditionModel UNet(KnownModel model, ScalarType dtype, ulong seed = 1) =>
        Materialize(new UNet2DConditionModel(KnownModelConfigs.UNet(model), dtype, device: torch.META), dtype, seed);

    /// <summary>
    /// Writes the random SD 2.1 768-v model as two diffusers folders, <paramref name="root"/>/fp32 and
    /// <paramref name="root"/>/fp16 (same values), each with model_index.json, scheduler, tokenizer, text_encoder,
    /// unet and vae. A folder counts as done once its <c>.complete</c> marker exists.
    /// </summary>
    public static void SaveFolders(string root)
    {
        var fp32 = Path.Combine(root, "fp32");
        var fp16 = Path.Combine(root, "fp16");
        foreach (var folder in new[] { fp32, fp16 })
        {
            if (File.Exists(Path.Combine(folder, ".complete"))) File.Delete(Path.Combine(folder, ".complete"));
            WriteSkeleton(folder);
        }

        SaveComponent("text_encoder", "model.safetensors", TextEncoderConfigFile,
            () => Materialize(new CLIPTextModel(TextEncoderConfig(),
                ScalarType.Float32, torch.META), ScalarType.Float32, 2), fp32, fp16);
        SaveComponent("unet", "diffusion_pytorch_model.safetensors", UNetConfigFile,
            () => UNet(KnownModel.Sd21_768V, ScalarType.Float32, 1), fp32, fp16);
        SaveComponent("vae", "diffusion_pytorch_model.safetensors", VaeConfigFile,
            () => Materialize(new AutoencoderKL(KnownModelConfigs.Vae(KnownModel.Sd21_768V), ScalarType.Float32, device: torch.META),
                ScalarType.Float32, 3), fp32, fp16);

        foreach (var folder in new[] { fp32, fp16 }) File.WriteAllText(Path.Combine(folder, ".complete"), DateTime.UtcNow.ToString("O"));
    }

    /// <summary>The random SD 2.1 768-v model as one ldm single-file checkpoint (fp32, ~5.2 GB).</summary>
    public static string SingleFilePath(string root) => Path.Combine(root, "sd21-768-v-single-file.safetensors");

    /// <summary>
    /// Writes the random SD 2.1 768-v model (the same seeds and values as the fp32 folder) as an ldm single-file
    /// checkpoint at <see cref="SingleFilePath"/>, through the engine's key map in reverse: fused q/k/v, 1×1-conv VAE
    /// attention and all 24 OpenCLIP blocks, as a released checkpoint has them (the 24th, never run, repeats the 23rd).
    /// </summary>
    public static void SaveSingleFile(string root)
    {
        Directory.CreateDirectory(root);
        using var text = Materialize(new CLIPTextModel(TextEncoderConfig(), ScalarType.Float32, torch.META), ScalarType.Float32, 2);
        using var unet = UNet(KnownModel.Sd21_768V, ScalarType.Float32, 1);
        using var vae = Materialize(new AutoencoderKL(KnownModelConfigs.Vae(KnownModel.Sd21_768V), ScalarType.Float32, device: torch.META),
            ScalarType.Float32, 3);
        var states = new Dictionary<SingleFileComponent, Dictionary<string, Tensor>>
        {
            [SingleFileComponent.TextEncoder] = text.state_dict(),
            [SingleFileComponent.UNet] = unet.state_dict(),
            [SingleFileComponent.Vae] = vae.state_dict(),
        };
        var map = new LdmKeyMap(SingleFileArchitecture);
        using var scope = torch.NewDisposeScope();
        var entries = map.SourceKeys.Order(StringComparer.Ordinal)
            .Select(key => (key, map.ToCheckpointTensor(key, (component, moduleKey) => states[component][moduleKey])))
            .ToList();
        var byName = entries.ToDictionary(e => e.key, e => e.Item2, StringComparer.Ordinal);
        string lastBlock = LdmKeyMap.TextPrefix + "transformer.resblocks.";
        foreach (var key in LdmKeyMap.TextBlockKeys)
            entries.Add((lastBlock + "23." + key, byName[lastBlock + "22." + key]));
        SafeTensorsWriter.Write(SingleFilePath(root), entries, new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>SD 2.1 768-v in ldm terms (the shapes of sd21-768-v.unet.json, sd21-768-v.vae.json, sd21-text_encoder.json).</summary>
    private static LdmArchitecture SingleFileArchitecture => new(
        new LdmUNetArchitecture(4, 4, new[] { 320, 640, 1280, 1280 }, 2, new[] { true, true, true, false },
            new[] { false, false, false, false }, 1, 1024, true, null),
        new LdmVaeArchitecture(3, 3, new[] { 128, 256, 512, 512 }, 2, 4),
        new LdmTextArchitecture(1024, 23, 24, 4096, 49408, 77));

    public static CLIPTextConfig TextEncoderConfig() =>
        JsonSerializer.Deserialize<CLIPTextConfig>(KnownModelConfigs.ReadJson(TextEncoderConfigFile))
        ?? throw new InvalidDataException($"Embedded config {TextEncoderConfigFile} is empty.");

    public static bool IsComplete(string root) =>
        File.Exists(Path.Combine(root, "fp32", ".complete")) && File.Exists(Path.Combine(root, "fp16", ".complete"));

    private static void SaveComponent(string component, string fileName, string configFile, Func<nn.Module> build, string fp32, string fp16)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var model = build();
        Measure.Log($"  built random {component} in {clock.Elapsed.TotalSeconds:F1} s");
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        var state = model.state_dict().Select(kv => (kv.Key, kv.Value)).ToList();
        foreach (var (folder, dtype) in new[] { (fp32, ScalarType.Float32), (fp16, ScalarType.Float16) })
        {
            clock.Restart();
            var dir = Path.Combine(folder, component);
            Directory.CreateDirectory(dir);
            File.WriteAllText(Path.Combine(dir, "config.json"), KnownModelConfigs.ReadJson(configFile));
            // One converted tensor at a time: the writer walks the sequence once per tensor.
            var converted = new List<(string, Tensor)>();
            try
            {
                foreach (var (key, tensor) in state) converted.Add((key, tensor.dtype == dtype ? tensor : tensor.to(dtype)));
                SafeTensorsWriter.Write(Path.Combine(dir, fileName), converted, metadata);
            }
            finally
            {
                foreach (var (_, tensor) in converted)
                    if (tensor.dtype != ScalarType.Float32 || dtype != ScalarType.Float32) tensor.Dispose();
            }
            Measure.Log($"  wrote {component} ({dtype}) in {clock.Elapsed.TotalSeconds:F1} s");
        }
    }

    private static void WriteSkeleton(string folder)
    {
        Directory.CreateDirectory(folder);
        var index = new Dictionary<string, object?>
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.29.2",
            ["requires_safety_checker"] = false,
            ["scheduler"] = new[] { "diffusers", "DDIMScheduler" },
            ["text_encoder"] = new[] { "transformers", "CLIPTextModel" },
            ["tokenizer"] = new[] { "transformers", "CLIPTokenizer" },
            ["unet"] = new[] { "diffusers", "UNet2DConditionModel" },
            ["vae"] = new[] { "diffusers", "AutoencoderKL" },
        };
        var indented = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(folder, "model_index.json"), JsonSerializer.Serialize(index, indented));

        // stable-diffusion-2-1's own scheduler config (v-prediction DDIM).
        var scheduler = new Dictionary<string, object?>
        {
            ["_class_name"] = "DDIMScheduler",
            ["beta_end"] = 0.012,
            ["beta_schedule"] = "scaled_linear",
            ["beta_start"] = 0.00085,
            ["clip_sample"] = false,
            ["num_train_timesteps"] = 1000,
            ["prediction_type"] = "v_prediction",
            ["set_alpha_to_one"] = false,
            ["skip_prk_steps"] = true,
            ["steps_offset"] = 1,
            ["timestep_spacing"] = "leading",
            ["trained_betas"] = null,
        };
        Directory.CreateDirectory(Path.Combine(folder, "scheduler"));
        File.WriteAllText(Path.Combine(folder, "scheduler", "scheduler_config.json"), JsonSerializer.Serialize(scheduler, indented));

        var tokenizer = Path.Combine(folder, "tokenizer");
        Directory.CreateDirectory(tokenizer);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "clip-tokenizer")))
            File.Copy(file, Path.Combine(tokenizer, Path.GetFileName(file)), overwrite: true);
    }
}
