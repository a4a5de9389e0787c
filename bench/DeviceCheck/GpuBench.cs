using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using PSStableDiffusion.Bench;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.DeviceCheck;

/// <summary>
/// Full-size SD 2.1 768-v with random weights (the CPU benchmark's, built in memory and moved to the device): one
/// UNet call with the CFG batch of 2 and one VAE decode at 512², 768² and 1024², then one whole 768² image of N DDIM
/// steps. Times are medians of --repeats runs after one warm-up, each ended by a device synchronize. On CUDA each of
/// those stages also records what the caching allocator holds beyond the weights afterwards, next to the engine's
/// memory estimate (<see cref="AllocatorAccount"/>): issue 12's calibration on a GPU. The VAE is timed in
/// the dtype the engine decodes in (float32 for a float16 model whose VAE config sets force_upcast, as SD 2.1's does)
/// and in the model's dtype, since diffusers' SD 2 pipeline decodes in the model's dtype.
/// </summary>
internal static class GpuBench
{
    private const string Prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed";

    public static (JsonObject Result, bool Passed) Run(string deviceName, string precisionName, int steps, int repeats)
    {
        var precision = precisionName switch
        {
            "float32" => Precision.Float32,
            "float16" => Precision.Float16,
            "bfloat16" => Precision.BFloat16,
            _ => throw new ArgumentException($"Unknown precision '{precisionName}'."),
        };
        var target = ComputeTarget.Parse(deviceName, precision);
        var stages = new JsonObject();
        var clock = Stopwatch.StartNew();
        using var unet = RandomWeights.UNet(KnownModel.Sd21_768V, target.DType).to(target.Device);
        unet.eval();
        var vaeConfig = KnownModelConfigs.Vae(KnownModel.Sd21_768V);
        var vaeDType = precision == Precision.Float16 && vaeConfig.ForceUpcast ? ScalarType.Float32 : target.DType;
        using var vae = RandomWeights.Materialize(new AutoencoderKL(vaeConfig, vaeDType, device: META), vaeDType, 3).to(target.Device);
        vae.eval();
        stages["build_s"] = clock.Elapsed.TotalSeconds;
        Log($"random 768-v UNet ({target.DTypeName}) and VAE ({vaeDType}) on {target.DeviceName} in {clock.Elapsed.TotalSeconds:F1} s");

        var memory = new AllocatorAccount(target);
        using (no_grad())
        {
            foreach (var size in new[] { 512, 768, 1024 })
            {
                long tokens = (size / 8L) * (size / 8L);
                stages[$"unet{size}"] = memory.After(TimeUNet(unet, target, size, repeats),
                    MemoryEstimator.UNetActivations(unet.Config, batch: 2, tokens, target.DType));
                stages[$"vae{size}"] = memory.After(TimeVae(vae, vaeDType, target, size, repeats),
                    MemoryEstimator.DecoderActivations(vaeConfig, images: 1, (long)size * size, vaeDType));
            }
            if (vaeDType != target.DType)
            {
                using var vaeModelDType = RandomWeights.Materialize(new AutoencoderKL(vaeConfig, target.DType, device: META), target.DType, 3).to(target.Device);
                vaeModelDType.eval();
                foreach (var size in new[] { 512, 768 }) stages[$"vae{size}_{target.DTypeName}"] = TimeVae(vaeModelDType, target.DType, target, size, repeats);
            }
        }
        stages["txt2img768"] = WholeImage(unet, vae, target, steps);
        var allocator = memory.Summary();
        bool finite = stages.Select(s => s.Value).OfType<JsonObject>().All(s => s["finite"]?.GetValue<bool>() ?? true);
        return (new JsonObject
        {
            ["device"] = target.DeviceName,
            ["precision"] = target.DTypeName,
            ["attention"] = "scaled_dot_product_attention (libtorch picks flash / memory-efficient / math)",
            ["stages"] = stages,
            ["allocator"] = allocator,
            ["pass"] = finite,
        }, finite);
    }

    private static JsonObject TimeUNet(UNet2DConditionModel unet, ComputeTarget target, int size, int repeats)
    {
        var generator = new Generator(7);
        using var sample = randn([2, 4, size / 8, size / 8], generator: generator).to(target.DType).to(target.Device); // [2, 4, h, w]
        using var context = randn([2, 77, 1024], generator: generator).to(target.DType).to(target.Device);            // [2, 77, 1024]
        using var timestep = tensor(999.0f);
        return Time($"unet{size}", target, repeats, () => unet.forward(sample, timestep, context));
    }

    private static JsonObject TimeVae(AutoencoderKL vae, ScalarType dtype, ComputeTarget target, int size, int repeats)
    {
        var generator = new Generator(7);
        using var latents = (randn([1, 4, size / 8, size / 8], generator: generator) / vae.ScalingFactor).to(dtype).to(target.Device); // [1, 4, h, w]
        var result = Time($"vae{size} ({dtype})", target, repeats, () => vae.Decode(latents));
        result["dtype"] = dtype.ToString();
        return result;
    }

    /// <summary>One warm-up call, then <paramref name="repeats"/> timed calls; the output of the last is checked for NaN/Inf.</summary>
    private static JsonObject Time(string name, ComputeTarget target, int repeats, Func<Tensor> call)
    {
        call().Dispose();
        Synchronize(target);
        var runs = new List<double>();
        bool finite = true;
        for (int i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            using var output = call();
            Synchronize(target);
            runs.Add(clock.Elapsed.TotalSeconds);
            if (i == repeats - 1) finite = output.isfinite().all().item<bool>();
        }
        var median = runs.Order().ElementAt(runs.Count / 2);
        Log($"{name}: median {median * 1000:F1} ms over {runs.Count} runs{(finite ? "" : " (output not finite)")}");
        return new JsonObject { ["median_s"] = median, ["runs_s"] = new JsonArray(runs.Select(r => (JsonNode)r).ToArray()), ["finite"] = finite };
    }

    /// <summary>A whole 768² image through the engine's pipeline (text encoder, DDIM, CFG 7.5, decode), after a 2-step warm-up.</summary>
    private static JsonObject WholeImage(UNet2DConditionModel unet, AutoencoderKL vae, ComputeTarget target, int steps)
    {
        // A bundled model disposes its parts; the caller owns the UNet and VAE, so this model is never disposed.
        var textEncoder = RandomWeights.Materialize(new CLIPTextModel(RandomWeights.TextEncoderConfig(), target.DType, META), target.DType, 2).to(target.Device);
        textEncoder.eval();
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(AppContext.BaseDirectory, "clip-tokenizer"));
        var model = StableDiffusionModel.FromComponents("random SD 2.1 768-v", target, tokenizer, textEncoder, unet, vae, DdimConfig());
        var request = new GenerationRequest { Prompt = Prompt, Width = 768, Height = 768, Steps = 2, GuidanceScale = 7.5, Scheduler = "DDIM", Seed = 42 };
        StableDiffusionPipeline.Generate(model, request).Dispose();
        Synchronize(target);
        var clock = Stopwatch.StartNew();
        using var result = StableDiffusionPipeline.Generate(model, request with { Steps = steps });
        Synchronize(target);
        double seconds = clock.Elapsed.TotalSeconds;
        bool finite = result.Images.isfinite().all().item<bool>();
        textEncoder.Dispose();
        Log($"txt2img768: {steps} DDIM steps in {seconds:F2} s ({seconds / steps * 1000:F0} ms per step){(finite ? "" : " (image not finite)")}");
        return new JsonObject { ["seconds"] = seconds, ["steps"] = steps, ["scheduler"] = "DDIM", ["guidance"] = 7.5, ["finite"] = finite };
    }

    /// <summary>SD 2.1 768-v's DDIM scheduler config, the one the engine embeds for single-file checkpoints.</summary>
    private static SchedulerConfig DdimConfig()
    {
        using var stream = typeof(SchedulerConfig).Assembly.GetManifestResourceStream("PSStableDiffusion.Engine.SingleFile.Configs.sd21-ddim.scheduler.json")
            ?? throw new InvalidOperationException("The engine's embedded sd21-ddim.scheduler.json is missing.");
        using var reader = new StreamReader(stream);
        return SchedulerConfig.Parse(reader.ReadToEnd());
    }

    private static void Synchronize(ComputeTarget target)
    {
        if (target.IsCuda) cuda.synchronize(target.Device);
    }

    private static void Log(string message) => Console.Error.WriteLine(message);
}
