using System.Diagnostics;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>What a pipeline call produced, before it becomes <c>SDImage</c> objects.</summary>
public sealed class GenerationResult : IDisposable
{
    /// <summary>[N, 3, H, W] float32 on the CPU: the VAE output in [-1, 1] (unclamped).</summary>
    public required Tensor Images { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }
    public required string SchedulerName { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }
    public required IReadOnlyList<double> Timesteps { get; init; }

    /// <summary>Seconds per stage: text_encoder, denoise, vae_decode (and vae_encode where an image came in).</summary>
    public required IReadOnlyDictionary<string, double> Timings { get; init; }

    public void Dispose() => Images.Dispose();
}

/// <summary>
/// The Stable Diffusion 2.x denoising loop, as diffusers' StableDiffusionPipeline runs it, for every variant the
/// model serves. RNG draws happen in diffusers' order on one CPU generator, so a seed reproduces diffusers' image.
/// </summary>
public static class StableDiffusionPipeline
{
    public static GenerationResult Generate(StableDiffusionModel model, GenerationRequest request, PipelineObserver? observer = null)
    {
        observer ??= PipelineObserver.None;
        var cancellation = observer.Cancellation;
        var timings = new Dictionary<string, double>();
        var (width, height) = ResolveSize(model, request);
        if (request.Steps < 1) throw new ArgumentOutOfRangeException(nameof(request), request.Steps, "Steps must be at least 1.");
        if (request.Count < 1) throw new ArgumentOutOfRangeException(nameof(request), request.Count, "Count must be at least 1.");

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var generatorNoise = request.NoiseOverride is null ? new GeneratorNoiseSource(request.Seed) : null;
        INoiseSource noise = request.NoiseOverride ?? generatorNoise!;
        var device = model.Target.Device;
        var dtype = model.Target.DType;
        bool guided = request.GuidanceScale > 1.0;

        // 1. Text embeddings, computed once per prompt and repeated for the batch: [uncond, cond] when guided.
        var clock = Stopwatch.StartNew();
        var promptEmbeds = EncodePrompt(model, request.Prompt, observer);                       // [1, 77, D]
        observer.Inspect?.Invoke("prompt_embeds", promptEmbeds);
        Tensor embeds = promptEmbeds.repeat(request.Count, 1, 1);                                 // [N, 77, D]
        if (guided)
        {
            var negativeEmbeds = EncodePrompt(model, request.NegativePrompt, observer);          // [1, 77, D]
            observer.Inspect?.Invoke("negative_prompt_embeds", negativeEmbeds);
            embeds = torch.cat(new[] { negativeEmbeds.repeat(request.Count, 1, 1), embeds });    // [2N, 77, D]
        }
        timings["text_encoder"] = clock.Elapsed.TotalSeconds;
        observer.Log?.Invoke($"Encoded the prompt{(guided ? " and the negative prompt" : "")} in {clock.Elapsed.TotalSeconds:F2} s.");

        // 2. Scheduler and timesteps.
        using var scheduler = CreateScheduler(model, request);
        scheduler.SetTimesteps(request.Steps);
        IReadOnlyList<double> timesteps = scheduler.TimestepValues;
        observer.Inspect?.Invoke("init_noise_sigma", torch.tensor((float)scheduler.InitNoiseSigma));

        // 3. Initial latents: noise × init_noise_sigma, drawn on the CPU generator in the compute dtype, as diffusers does.
        int latentHeight = height / model.VaeScaleFactor, latentWidth = width / model.VaeScaleFactor;
        long[] latentShape = { request.Count, model.Unet.Config.OutChannels, latentHeight, latentWidth };
        var latents = (noise.Randn(latentShape, dtype).to(device).to(ScalarType.Float32) * scheduler.InitNoiseSigma);  // [N, 4, h, w]
        observer.Inspect?.Invoke("initial_latents", latents);

        // 4. Denoising loop. Latents stay float32 between steps; the UNet computes in the model dtype.
        clock.Restart();
        var loopClock = Stopwatch.StartNew();
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            using var stepScope = torch.NewDisposeScope();
            double t = timesteps[i];
            var name = $"step{i:D2}";
            var modelInput = guided ? torch.cat(new[] { latents, latents }) : latents;        // [2N, 4, h, w]
            modelInput = scheduler.ScaleModelInput(modelInput, t);
            observer.Inspect?.Invoke(name + "_unet_input", modelInput);
            var timestep = torch.tensor(t, ScalarType.Float32, device);
            var unetOutput = model.Unet.forward(modelInput.to(dtype), timestep, embeds).to(ScalarType.Float32);  // [2N, 4, h, w]
            observer.Inspect?.Invoke(name + "_unet_output", unetOutput);
            Tensor noisePred;
            if (guided)
            {
                var chunks = unetOutput.chunk(2);                                                 // 2 × [N, 4, h, w]
                noisePred = chunks[0] + request.GuidanceScale * (chunks[1] - chunks[0]);
            }
            else
            {
                noisePred = unetOutput;
            }
            observer.Inspect?.Invoke(name + "_noise_pred", noisePred);
            observer.Inspect?.Invoke(name + "_sample_in", latents);
            var next = scheduler.Step(noisePred, t, latents, noise);
            observer.Inspect?.Invoke(name + "_latents", next);
            latents = next.MoveToOuterDisposeScope();
            observer.Progress?.Invoke(new StepProgress(i + 1, timesteps.Count, loopClock.Elapsed));
        }
        timings["denoise"] = clock.Elapsed.TotalSeconds;
        observer.Inspect?.Invoke("final_latents", latents);
        observer.Log?.Invoke($"Ran {timesteps.Count} {scheduler.Name} steps in {clock.Elapsed.TotalSeconds:F2} s.");

        // 5. Decode.
        cancellation.ThrowIfCancellationRequested();
        clock.Restart();
        var vaeInput = latents / model.Vae.Config.ScalingFactor;                                  // [N, 4, h, w]
        observer.Inspect?.Invoke("vae_decode_input", vaeInput);
        var vaeDType = model.Vae.parameters().First().dtype;
        var decoded = model.Vae.Decode(vaeInput.to(vaeDType)).to(ScalarType.Float32).cpu();     // [N, 3, H, W]
        observer.Inspect?.Invoke("vae_decode_output", decoded);
        timings["vae_decode"] = clock.Elapsed.TotalSeconds;
        observer.Log?.Invoke($"Decoded {request.Count} image(s) of {width}x{height} in {clock.Elapsed.TotalSeconds:F2} s.");

        return new GenerationResult
        {
            Images = decoded.MoveToOuterDisposeScope(),
            Width = width,
            Height = height,
            SchedulerName = scheduler.Name,
            SchedulerConfig = scheduler.Config,
            Timesteps = timesteps,
            Timings = timings,
        };
    }

    /// <summary>Token ids for one prompt, run through the text encoder: [1, 77, D] in the model dtype.</summary>
    internal static Tensor EncodePrompt(StableDiffusionModel model, string prompt, PipelineObserver observer)
    {
        var encoding = model.Tokenizer.EncodeWithInfo(prompt);
        if (encoding.Truncated)
            observer.Warn?.Invoke($"The prompt is longer than the text encoder's {encoding.Ids.Length} tokens; this part was cut off: \"{encoding.DroppedText}\".");
        var ids = torch.tensor(encoding.Ids.Select(i => (long)i).ToArray(), new long[] { 1, encoding.Ids.Length }, ScalarType.Int64, model.Target.Device);  // [1, 77]
        return model.TextEncoder.forward(ids).LastHiddenState;                                   // [1, 77, D]
    }

    /// <summary>
    /// The model's own scheduler, or the one the request names built from the model's config (diffusers' from_config),
    /// with eta / Karras sigmas applied as overrides.
    /// </summary>
    internal static SchedulerBase CreateScheduler(StableDiffusionModel model, GenerationRequest request)
    {
        var overrides = new SchedulerConfig { Eta = request.Eta, UseKarrasSigmas = request.KarrasSigmas };
        return string.IsNullOrWhiteSpace(request.Scheduler)
            ? SchedulerRegistry.FromConfig(model.SchedulerConfig, overrides)
            : SchedulerRegistry.Create(request.Scheduler, model.SchedulerConfig, overrides);
    }

    internal static (int Width, int Height) ResolveSize(StableDiffusionModel model, GenerationRequest request)
    {
        int width = request.Width ?? model.DefaultSize, height = request.Height ?? model.DefaultSize;
        int multiple = model.VaeScaleFactor;
        if (width < multiple || width % multiple != 0)
            throw new ArgumentOutOfRangeException(nameof(request), width, $"Width must be a positive multiple of {multiple}, not {width}.");
        if (height < multiple || height % multiple != 0)
            throw new ArgumentOutOfRangeException(nameof(request), height, $"Height must be a positive multiple of {multiple}, not {height}.");
        return (width, height);
    }
}
