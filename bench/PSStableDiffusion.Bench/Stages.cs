using System.Diagnostics;
using System.Text.RegularExpressions;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Bench;

/// <summary>The work each child process measures: one stage in one dtype.</summary>
internal static partial class Stages
{
    public static StageResult Run(BenchOptions options, string stage, string dtypeName)
    {
        var dtype = dtypeName == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var result = new StageResult { Stage = stage, DType = dtypeName };
        result.LibTorchDefaultThreads = TorchThreads.LibTorchDefault;
        result.Threads = TorchThreads.Configure(options.Threads);
        result.Details["huge_pages"] = options.HugePages ? 1 : 0;
        int warmups = 1, repeats = options.RepeatCount;
        using var noGrad = torch.no_grad();
        var folder = options.ModelFolder!;

        switch (stage)
        {
            case "save":
            {
                var clock = Stopwatch.StartNew();
                RandomWeights.SaveFolders(options.SaveFolder!);
                result.RunsS.Add(clock.Elapsed.TotalSeconds);
                break;
            }
            case "kernels":
                result.Items = Kernels(options);
                break;
            case "load-fp32" or "load-fp16":
            {
                var files = stage == "load-fp16" ? Path.Combine(options.SaveFolder!, "fp16") : folder;
                result.Note = $"DiffusersFolderLoader.Load('{files}') into {dtypeName}, warm page cache";
                var target = new ComputeTarget("cpu", dtype == ScalarType.BFloat16 ? Precision.BFloat16 : Precision.Float32);
                var components = new Dictionary<string, List<double>>();
                void Log(string line)
                {
                    var match = LoadLine().Match(line);
                    if (!match.Success) return;
                    var name = match.Groups[1].Value.Replace(' ', '_').ToLowerInvariant();
                    if (!components.TryGetValue(name, out var list)) components[name] = list = new List<double>();
                    list.Add(double.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
                }
                Measure.ResetPeak();
                result.RunsS = Measure.Time(() =>
                {
                    using var model = DiffusersFolderLoader.Load(files, target, Log);
                }, warmups, repeats, stage);
                result.PeakRssRunBytes = Measure.PeakBytes();
                foreach (var (name, times) in components) result.Details[name + "_s"] = Measure.Median(times.Skip(warmups).ToList());
                break;
            }
            case "text":
            {
                using var encoder = CLIPTextModel.FromPretrained(Path.Combine(folder, "text_encoder"), dtype, CPU);
                var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
                var ids = new[] { "a photograph of an astronaut riding a horse on the moon, highly detailed", "" }
                    .SelectMany(p => tokenizer.EncodeWithInfo(p).Ids.Select(i => (long)i)).ToArray();
                using var input = torch.tensor(ids, new long[] { 2, ids.Length / 2 }, ScalarType.Int64); // [2, 77]
                Tensor? last = null;
                result.Flop = Flops.TextEncoderBatch2;
                TimeModel(result, () =>
                {
                    last?.Dispose();
                    last = encoder.forward(input).LastHiddenState;
                }, warmups, repeats);
                Inspect(result, last!);
                break;
            }
            case "text-3chunks":
                TextChunks(result, folder, dtype, warmups, repeats);
                break;
            case "unet512-3chunks":
                UnetUnequalChunks(result, folder, dtype, warmups, repeats);
                break;
            case "unet512" or "unet768" or "unet1024":
            {
                int size = int.Parse(stage["unet".Length..], System.Globalization.CultureInfo.InvariantCulture);
                using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(folder, "unet"), dtype, CPU);
                var generator = new torch.Generator(7);
                using var sample = torch.randn(new long[] { 2, 4, size / 8, size / 8 }, generator: generator).to(dtype); // [2, 4, h, w]
                using var context = torch.randn(new long[] { 2, 77, 1024 }, generator: generator).to(dtype);              // [2, 77, 1024]
                using var timestep = torch.tensor(999.0f);
                Tensor? last = null;
                result.Flop = size switch { 512 => Flops.UNet512, 768 => Flops.UNet768, _ => null };
                TimeModel(result, () =>
                {
                    last?.Dispose();
                    last = unet.forward(sample, timestep, context);
                }, warmups, repeats);
                Inspect(result, last!);
                break;
            }
            case "vae512" or "vae768" or "vae1024" or "vae1024-tiled":
            {
                bool tiled = stage == "vae1024-tiled";
                int size = stage switch { "vae512" => 512, "vae768" => 768, _ => 1024 };
                using var vae = AutoencoderKL.FromPretrained(Path.Combine(folder, "vae"), dtype, CPU);
                var generator = new torch.Generator(7);
                // Latents as the pipeline hands them over: N(0, 1) divided by the scaling factor.
                using var latents = (torch.randn(new long[] { 1, 4, size / 8, size / 8 }, generator: generator) / vae.ScalingFactor).to(dtype);
                // -TiledDecode: 512² tiles (64² latent, overlap 16), 3×3 of them at 1024².
                var plan = new TilePlan(StableDiffusionPipeline.DefaultDecoderTileSize, StableDiffusionPipeline.DefaultDecoderTileSize / 4);
                result.Flop = size switch { 512 => Flops.VaeDecode512, 768 => Flops.VaeDecode768, _ when tiled => plan.Count(128, 128) * Flops.VaeDecode512, _ => null };
                if (tiled) result.Note = $"{plan.Count(128, 128)} tiles of 512² (overlap 128 px); GFLOP/s counts the tiles' work";
                Tensor? last = null;
                TimeModel(result, () =>
                {
                    last?.Dispose();
                    last = tiled ? TiledInference.Run(latents, plan, vae.Config.DownscaleFactor, vae.Decode) : vae.Decode(latents);
                }, warmups, repeats);
                Inspect(result, last!);
                break;
            }
            case "nan-check":
            {
                // What the NonFiniteOutput checks cost: one per denoising step on the UNet's CFG output of a 512² call
                // ([2, 4, 64, 64]), one on the decoded image ([1, 3, 512, 512]). Compare with unet512's step time.
                const int calls = 1000;
                var generator = new torch.Generator(7);
                using var prediction = torch.randn(new long[] { 2, 4, 64, 64 }, generator: generator); // [2, 4, 64, 64]
                using var image = torch.rand(new long[] { 1, 3, 512, 512 }, generator: generator);     // [1, 3, 512, 512]
                var decoderRuns = Measure.Time(() =>
                {
                    for (int i = 0; i < calls / 10; i++) NonFiniteOutputException.ThrowIfNotFinite(image, "VAE decoder");
                }, warmups, repeats, "nan-check/decoder");
                result.RunsS = Measure.Time(() =>
                {
                    for (int i = 0; i < calls; i++) NonFiniteOutputException.ThrowIfNotFinite(prediction, "UNet", 1, 20);
                }, warmups, repeats, "nan-check/unet");
                result.Details["unet_check_us"] = Measure.Median(result.RunsS) / calls * 1e6;
                result.Details["decoder_check_us"] = Measure.Median(decoderRuns) / (calls / 10) * 1e6;
                result.Note = $"runs_s: {calls} checks of a [2,4,64,64] UNet output; details: microseconds per check";
                break;
            }
            case "txt2img512":
            {
                var target = new ComputeTarget("cpu", dtype == ScalarType.BFloat16 ? Precision.BFloat16 : Precision.Float32);
                var loadClock = Stopwatch.StartNew();
                using var model = DiffusersFolderLoader.Load(folder, target);
                result.Details["load_s"] = loadClock.Elapsed.TotalSeconds;
                Measure.ResetPeak();
                GenerateOne(result, model, "DPMSolverMultistep", options.Steps);
                result.PeakRssRunBytes = Measure.PeakBytes();
                break;
            }
            case "save-single-file":
            {
                var clock = Stopwatch.StartNew();
                RandomWeights.SaveSingleFile(options.SaveFolder!);
                result.RunsS.Add(clock.Elapsed.TotalSeconds);
                break;
            }
            case "load-single-file":
            {
                var checkpoint = RandomWeights.SingleFilePath(options.SaveFolder!);
                var target = new ComputeTarget("cpu", dtype == ScalarType.BFloat16 ? Precision.BFloat16 : Precision.Float32);
                result.Note = $"single-file checkpoint '{checkpoint}' (fp32) into {dtypeName}, warm page cache";
                Measure.ResetPeak();
                result.RunsS = Measure.Time(() =>
                {
                    using var model = LoadSingleFile(checkpoint, target);
                }, warmups, repeats, stage);
                result.PeakRssRunBytes = Measure.PeakBytes();
                break;
            }
            case "single-file-txt2img512":
            {
                // Issue 11's single-file figure: one process loads the checkpoint and makes one 512² image (DDIM);
                // peak_rss_bytes covers both.
                var target = new ComputeTarget("cpu", dtype == ScalarType.BFloat16 ? Precision.BFloat16 : Precision.Float32);
                var loadClock = Stopwatch.StartNew();
                using var model = LoadSingleFile(RandomWeights.SingleFilePath(options.SaveFolder!), target);
                result.Details["load_s"] = loadClock.Elapsed.TotalSeconds;
                result.Details["peak_rss_load_bytes"] = Measure.PeakBytes();
                result.Details["rss_after_load_bytes"] = Measure.CurrentBytes();
                GenerateOne(result, model, "DDIM", options.Steps);
                break;
            }
            case "lora512":
                LoraStage(result, folder, dtype, warmups, repeats);
                break;
            case "lora-runtime512":
                LoraRuntimeStage(result, folder, dtype, warmups, repeats);
                break;
            case "upscaler":
            {
                // Random weights in memory (the x4 upscaler is not part of the saved SD 2.1 folder).
                using var unet = RandomWeights.UNet(KnownModel.X4Upscaler, dtype);
                unet.eval();
                var generator = new torch.Generator(7);
                using var sample = torch.randn(new long[] { 2, 7, 128, 128 }, generator: generator).to(dtype); // [2, 7, 128, 128]
                using var context = torch.randn(new long[] { 2, 77, 1024 }, generator: generator).to(dtype);   // [2, 77, 1024]
                using var timestep = torch.tensor(999.0f);
                using var noiseLevel = torch.tensor(new long[] { 20, 20 });
                Tensor? last = null;
                result.Note = "x4 upscaler UNet, one step on a 128² low-res image (512² output), CFG batch 2, random weights";
                TimeModel(result, () =>
                {
                    last?.Dispose();
                    last = unet.forward(sample, timestep, context, noiseLevel);
                }, warmups, repeats);
                Inspect(result, last!);
                break;
            }
            case "upscale2048":
            {
                // Issue 3's memory bar: a 512×512 → 2048×2048 x4 upscale with the tiled UNet and decoder, full-size
                // x4 architecture (random weights), through the real pipeline; one denoising step keeps it short.
                var target = new ComputeTarget("cpu", Precision.Float32);
                var textEncoder = RandomWeights.Materialize(new CLIPTextModel(RandomWeights.TextEncoderConfig(), ScalarType.Float32, torch.META), ScalarType.Float32, 3);
                var unet = RandomWeights.UNet(KnownModel.X4Upscaler, ScalarType.Float32);
                var vae = RandomWeights.Materialize(new AutoencoderKL(KnownModelConfigs.Vae(KnownModel.X4Upscaler), ScalarType.Float32, device: torch.META), ScalarType.Float32, 5);
                using var model = StableDiffusionModel.FromComponents("random x4 upscaler", target,
                    ClipTokenizer.FromFolder(PSStableDiffusion.Engine.SingleFile.SingleFileModelPlan.TokenizerFolder), textEncoder, unet, vae,
                    Engine.Schedulers.SchedulerConfig.Parse(PSStableDiffusion.Engine.SingleFile.SingleFilePlanner.ReadConfig("x4-upscaler.scheduler.json").ToJsonString()),
                    Engine.Schedulers.SchedulerConfig.Parse(PSStableDiffusion.Engine.SingleFile.SingleFilePlanner.ReadConfig("x4-upscaler.low_res_scheduler.json").ToJsonString()));
                result.Details["rss_after_load_bytes"] = Measure.CurrentBytes();
                var generator = new torch.Generator(11);
                using var image = (torch.rand(new long[] { 1, 3, 512, 512 }, generator: generator) * 2 - 1);   // [1, 3, 512, 512]
                var request = new GenerationRequest { Prompt = "a photograph", Steps = 1, GuidanceScale = 9, Seed = 1,
                    Input = new Engine.Pipelines.Tasks.UpscaleInput { Image = image, NoiseLevel = 20 } };
                result.Note = $"x4 upscale 512² → 2048², tiled UNet and decoder (tile 128 latent px), {request.Steps} step(s), CFG 2, full-size random weights";
                Measure.ResetPeak();
                var clock = Stopwatch.StartNew();
                using var generated = StableDiffusionPipeline.Generate(model, request,
                    new PipelineObserver { Log = Measure.Log });
                result.RunsS.Add(clock.Elapsed.TotalSeconds);
                result.PeakRssRunBytes = Measure.PeakBytes();
                result.Details["unet_tiles"] = generated.UnetTiles;
                result.Details["decoder_tiles"] = generated.DecoderTiles;
                foreach (var (name, seconds) in generated.Timings) result.Details[name + "_s"] = seconds;
                Inspect(result, generated.Images);
                break;
            }
            case "depth-estimator512":
                DepthEstimator512(result, dtype, warmups, repeats);
                break;
            default:
                throw new ArgumentException($"Unknown stage '{stage}'.");
        }

        if (result.RunsS.Count > 0) result.MedianS = Measure.Median(result.RunsS);
        if (stage != "kernels" && Measure.LastCpuSeconds.Count > 0)
        {
            result.Details["cpu_s_median"] = Measure.Median(Measure.LastCpuSeconds);
            result.Details["page_faults_median"] = Measure.Median(Measure.LastPageFaults);
            result.Details["kernel_cpu_s_median"] = Measure.Median(Measure.LastSystemSeconds);
            if (Measure.LastWarmups.Count > 0) result.Details["first_run_s"] = Measure.LastWarmups[0];
        }
        if (result.Flop is { } flop && result.RunsS.Count > 0) result.GflopPerS = flop / result.MedianS / 1e9;
        result.PeakRssBytes = Measure.PeakBytes();
        return result;
    }

    /// <summary>
    /// Get-SDDepthMap's work on a 512² image: stable-diffusion-2-depth's DPT-Hybrid at full size (the released
    /// depth_estimator config: BiT [3, 4, 9], ViT-B/16 at 384², random weights), its processor (bicubic to 384²), the
    /// forward pass, the bicubic resize back to 512² and the 16-bit levels.
    /// </summary>
    private static void DepthEstimator512(StageResult result, ScalarType dtype, int warmups, int repeats)
    {
        var config = DPTConfig.FromJson(KnownModelConfigs.ReadJson("sd2-depth.depth_estimator.json"), "sd2-depth.depth_estimator.json");
        var processor = new DPTImageProcessor(DPTImageProcessorConfig.FromJson(
            KnownModelConfigs.ReadJson("sd2-depth.feature_extractor.json"), "sd2-depth.feature_extractor.json"));
        var model = RandomWeights.Materialize(new DPTForDepthEstimation(config, torch.META, dtype), dtype, 13);
        model.eval();
        using var estimator = DepthEstimator.FromComponents(model, processor, "random DPT-Hybrid", dtype, torch.CPU);
        var pixels = new byte[512 * 512 * 3];
        new Random(5).NextBytes(pixels);
        var image = new SDImage(512, 512, pixels);
        SDImage? last = null;
        result.Note = $"DPT-Hybrid (BiT [{string.Join(", ", config.Bit.Depths)}], ViT {config.NumHiddenLayers}x{config.HiddenSize}, {config.ImageSize}² input), " +
            "one 512² image: preprocess, forward, bicubic to 512², 16-bit levels; random weights";
        TimeModel(result, () => last = DepthMapEstimation.Estimate(estimator, image, normalize: true, null), warmups, repeats);
        result.Details["weights_bytes"] = estimator.MemoryBytes;
        result.OutputFinite = last is { Record.DepthRange: [var low, var high] } && double.IsFinite(low) && double.IsFinite(high);
    }

    /// <summary>The random 768-v single file, planned as v-prediction (a safetensors file carries no hint of it).</summary>
    private static StableDiffusionModel LoadSingleFile(string checkpoint, ComputeTarget target) =>
        SingleFileModelLoader.Load(checkpoint, target,
            new Engine.SingleFile.SingleFileOptions { PredictionType = "v_prediction", UseConfigBesideCheckpoint = false });

    /// <summary>One 512² image of <paramref name="steps"/> <paramref name="scheduler"/> steps at CFG 7.5; times each step.</summary>
    private static void GenerateOne(StageResult result, StableDiffusionModel model, string scheduler, int steps)
    {
        var request = new GenerationRequest
        {
            Prompt = "a photograph of an astronaut riding a horse on the moon, highly detailed",
            Steps = steps,
            Scheduler = scheduler,
            GuidanceScale = 7.5,
            Width = 512,
            Height = 512,
            Seed = 42,
        };
        var stepTimes = new List<double>();
        TimeSpan previous = TimeSpan.Zero;
        var observer = new PipelineObserver
        {
            Progress = p =>
            {
                stepTimes.Add((p.Elapsed - previous).TotalSeconds);
                previous = p.Elapsed;
                Measure.Log($"  step {p.Step}/{p.TotalSteps}: {stepTimes[^1]:F2} s, RSS {Measure.CurrentBytes() / (double)(1L << 30):F2} GiB");
            },
        };
        result.Flop = Flops.Txt2Img512(steps);
        result.Note = $"{steps} {scheduler} steps, CFG 7.5, one run (no warm-up: the first step warms up)";
        var clock = Stopwatch.StartNew();
        using (var generated = StableDiffusionPipeline.Generate(model, request, observer))
        {
            result.RunsS.Add(clock.Elapsed.TotalSeconds);
            foreach (var (name, seconds) in generated.Timings) result.Details[name + "_s"] = seconds;
            Inspect(result, generated.Images);
        }
        result.Details["step_median_s"] = Measure.Median(stepTimes);
        result.Details["step_first_s"] = stepTimes.Count > 0 ? stepTimes[0] : double.NaN;
    }

    /// <summary>Times a model call after the model is loaded; the run-phase peak RSS starts after loading.</summary>
    /// <summary>A prompt as pasted from AUTOMATIC1111: weights and commas, three chunks of 75 tokens.</summary>
    internal static string ThreeChunkPrompt =>
        string.Join(", ", Enumerable.Range(0, 20).Select(k => k % 3 == 0
            ? $"(a detailed oil painting of a lighthouse:{1 + k / 10.0:0.0})"
            : "a stormy sea under heavy clouds at dusk"));

    /// <summary>`text-3chunks`: the A1111 reading of <see cref="ThreeChunkPrompt"/>: three text-encoder passes
    /// (batch 1 each, as A1111 encodes a lone prompt) and their emphasis, joined to [1, 231, 1024].</summary>
    private static void TextChunks(StageResult result, string folder, ScalarType dtype, int warmups, int repeats)
    {
        using var encoder = CLIPTextModel.FromPretrained(Path.Combine(folder, "text_encoder"), dtype, CPU);
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var chunks = new PromptChunker(tokenizer).Split(ThreeChunkPrompt).Chunks;
        result.Details["chunks"] = chunks.Count;
        result.Flop = chunks.Count * Flops.TextEncoderBatch2 / 2;
        result.Note = $"{chunks.Count} chunks of 77, each through the text encoder alone, weighted; compare `text` (one pass, batch 2)";
        Tensor? last = null;
        TimeModel(result, () =>
        {
            last?.Dispose();
            last = ChunkedPromptEncoding.Encode(chunks, ids =>
                encoder.forward(torch.tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length })).LastHiddenState); // [1, 231, 1024]
        }, warmups, repeats);
        Inspect(result, last!);
    }

    /// <summary>`unet512-3chunks`: one guided step at 512² as the pipeline runs a 3-chunk prompt against a 1-chunk
    /// negative: two UNet calls of batch 1 (context [1, 77, 1024], then [1, 231, 1024]) instead of one of batch 2.</summary>
    private static void UnetUnequalChunks(StageResult result, string folder, ScalarType dtype, int warmups, int repeats)
    {
        using var unet = UNet2DConditionModel.FromPretrained(Path.Combine(folder, "unet"), dtype, CPU);
        var generator = new torch.Generator(7);
        using var sample = torch.randn(new long[] { 1, 4, 64, 64 }, generator: generator).to(dtype);          // [1, 4, 64, 64]
        using var negative = torch.randn(new long[] { 1, 77, 1024 }, generator: generator).to(dtype);          // [1, 77, 1024]
        using var prompt = torch.randn(new long[] { 1, 3 * 77, 1024 }, generator: generator).to(dtype);        // [1, 231, 1024]
        using var timestep = torch.tensor(999.0f);
        result.Note = "two batch-1 UNet calls (1-chunk negative, 3-chunk prompt); compare `unet512` (one batch-2 call, 77 tokens)";
        Tensor? last = null;
        TimeModel(result, () =>
        {
            last?.Dispose();
            using var uncond = unet.forward(sample, timestep, negative);                                       // [1, 4, 64, 64]
            using var cond = unet.forward(sample, timestep, prompt);                                           // [1, 4, 64, 64]
            last = torch.cat(new[] { uncond, cond });                                                          // [2, 4, 64, 64]
        }, warmups, repeats);
        Inspect(result, last!);
    }

    private static void TimeModel(StageResult result, Action run, int warmups, int repeats)
    {
        result.Details["rss_after_load_bytes"] = Measure.CurrentBytes();
        result.Details["peak_rss_load_bytes"] = Measure.PeakBytes();
        bool reset = false;
        long baseline = 0;
        result.RunsS = Measure.Time(run, warmups, repeats, result.Stage + "/" + result.DType, afterWarmups: () =>
        {
            // After the warm-up the weights are resident, so what the timed runs add on top is their activations.
            GC.Collect();
            baseline = Measure.CurrentBytes();
            reset = Measure.ResetPeak();
        });
        if (!reset) return;
        result.PeakRssRunBytes = Measure.PeakBytes();
        result.Details["rss_before_runs_bytes"] = baseline;
        result.Details["activation_peak_bytes"] = result.PeakRssRunBytes.Value - baseline;
    }

    private static void Inspect(StageResult result, Tensor output)
    {
        using var scope = NewDisposeScope();
        var values = output.to(ScalarType.Float32);
        result.OutputFinite = values.isfinite().all().item<bool>();
        result.OutputStd = values.std().item<float>();
        output.Dispose();
    }

    [GeneratedRegex(@"^Loaded (text encoder|UNet|VAE) .* in ([0-9.]+) s\.$")]
    private static partial Regex LoadLine();

    private static List<StageResult> Kernels(BenchOptions options)
    {
        var items = new List<StageResult>();
        int repeats = Math.Max(options.RepeatCount, options.Quick ? 3 : 5);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            string name = dtype == ScalarType.Float32 ? "float32" : "bfloat16";
            var generator = new torch.Generator(3);

            using (var a = torch.randn(new long[] { 2048, 2048 }, generator: generator).to(dtype))
            using (var b = torch.randn(new long[] { 2048, 2048 }, generator: generator).to(dtype))
            using (var sa = a.narrow(0, 0, 256).narrow(1, 0, 256).contiguous())
            using (var sb = b.narrow(0, 0, 256).narrow(1, 0, 256).contiguous())
            {
                items.Add(Kernel("matmul 2048²", name, Flops.Matmul(2048), () => torch.matmul(a, b).Dispose(), repeats,
                    probe: (() => torch.matmul(sa, sb).Dispose(), Flops.Matmul(256), "matmul 256²")));
                // F.linear multiplies by the transposed weight: another gemm path in libtorch.
                items.Add(Kernel("matmul 2048² × Bᵀ (linear)", name, Flops.Matmul(2048), () => nn.functional.linear(a, b).Dispose(), repeats,
                    probe: (() => nn.functional.linear(sa, sb).Dispose(), Flops.Matmul(256), "linear 256²")));
            }

            using (var x = torch.randn(new long[] { 1, 320, 64, 64 }, generator: generator).to(dtype))
            using (var w = (torch.randn(new long[] { 320, 320, 3, 3 }, generator: generator) * 0.02).to(dtype))
            {
                using var xs = x.narrow(2, 0, 16).narrow(3, 0, 16).contiguous();
                items.Add(Kernel("conv3x3 320→320 64²", name, Flops.Conv3x3(1, 320, 64),
                    () => nn.functional.conv2d(x, w, padding: new long[] { 1, 1 }).Dispose(), repeats,
                    probe: (() => nn.functional.conv2d(xs, w, padding: new long[] { 1, 1 }).Dispose(), Flops.Conv3x3(1, 320, 16), "conv3x3 on 16²")));
                using var xl = ChannelsLast.Of(x);
                using var wl = ChannelsLast.Of(w);
                using var xsl = ChannelsLast.Of(xs);
                items.Add(Kernel("conv3x3 320→320 64² channels-last", name, Flops.Conv3x3(1, 320, 64),
                    () => nn.functional.conv2d(xl, wl, padding: new long[] { 1, 1 }).Dispose(), repeats,
                    probe: (() => nn.functional.conv2d(xsl, wl, padding: new long[] { 1, 1 }).Dispose(), Flops.Conv3x3(1, 320, 16), "conv3x3 on 16²")));
            }

            using (var q = torch.randn(new long[] { 2, 5, 4096, 64 }, generator: generator).to(dtype))
            using (var k = torch.randn(new long[] { 2, 5, 4096, 64 }, generator: generator).to(dtype))
            using (var v = torch.randn(new long[] { 2, 5, 4096, 64 }, generator: generator).to(dtype))
            using (var qs = q.narrow(2, 0, 512).contiguous())
            using (var ks = k.narrow(2, 0, 512).contiguous())
            using (var vs = v.narrow(2, 0, 512).contiguous())
                items.Add(Kernel("sdpa (2,5,4096,64)", name, Flops.Attention(2, 5, 4096, 64),
                    () => nn.functional.scaled_dot_product_attention(q, k, v).Dispose(), repeats,
                    probe: (() => nn.functional.scaled_dot_product_attention(qs, ks, vs).Dispose(), Flops.Attention(2, 5, 512, 64), "512 tokens")));

            using (var x = torch.randn(new long[] { 2, 320, 64, 64 }, generator: generator).to(dtype))
            using (var gamma = torch.ones(320, dtype))
            using (var beta = torch.zeros(320, dtype))
                items.Add(Kernel("group_norm 32 (2,320,64²)", name, null,
                    () => nn.functional.group_norm(x, 32, gamma, beta, 1e-5).Dispose(), repeats));

            using (var x = torch.randn(new long[] { 8192, 320 }, generator: generator).to(dtype))
            using (var w = (torch.randn(new long[] { 2560, 320 }, generator: generator) * 0.05).to(dtype))
            using (var xs = x.narrow(0, 0, 512).contiguous())
                items.Add(Kernel("linear 8192×320→2560", name, 2.0 * 8192 * 320 * 2560,
                    () => nn.functional.linear(x, w).Dispose(), repeats,
                    probe: (() => nn.functional.linear(xs, w).Dispose(), 2.0 * 512 * 320 * 2560, "512 rows")));
        }
        return items;
    }

    /// <summary>
    /// Times one kernel. With a <paramref name="probe"/> (a small version of the same work) a bf16 kernel is first
    /// timed small: when the full size would take longer than <see cref="KernelBudgetSeconds"/> (bf16 on a CPU
    /// without bf16 instructions is 10-300× slower), the probe's rate is reported instead of the full size.
    /// </summary>
    private static StageResult Kernel(string label, string dtype, double? flop, Action run, int repeats,
        (Action Run, double Flop, string Label)? probe = null)
    {
        var result = new StageResult { Stage = label, DType = dtype, Flop = flop, Threads = TorchThreads.Current };
        // Only bf16 can be pathologically slow; an fp32 probe's first-call overhead would mislead the estimate.
        if (probe is { } small && flop is { } full && dtype == "bfloat16")
        {
            var probeRuns = Measure.Time(small.Run, 1, 2, $"{label} {dtype} probe ({small.Label})");
            double predicted = Measure.Median(probeRuns) * full / small.Flop;
            if (predicted > KernelBudgetSeconds)
            {
                result.Flop = small.Flop;
                result.RunsS = probeRuns;
                result.MedianS = Measure.Median(probeRuns);
                result.GflopPerS = small.Flop / result.MedianS / 1e9;
                result.Note = $"measured on {small.Label}: the full size would take about {predicted:F0} s per call";
                Measure.Log($"  {label} {dtype}: {result.Note}");
                return result;
            }
        }
        // Three fp32 warm-ups: the first calls of a process also pay for thread-pool start-up and first-touch page
        // faults. One for bf16, whose kernels can take half a minute per call on a CPU without bf16 instructions.
        result.RunsS = Measure.Time(run, dtype == "bfloat16" ? 1 : 3, repeats, $"{label} {dtype}");
        result.MedianS = Measure.Median(result.RunsS);
        if (flop is { } f) result.GflopPerS = f / result.MedianS / 1e9;
        return result;
    }

    private const double KernelBudgetSeconds = 10;
}
