using System.Diagnostics;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The shared core of every Stable Diffusion 2.x pipeline, as diffusers runs them: encode the prompts, set the
/// timesteps, run the denoising loop, decode. What differs by task (text-to-image, image-to-image, inpainting,
/// depth-to-image, the x4 upscaler) lives in one small <see cref="PipelineTask"/> each. RNG draws happen in diffusers'
/// order on one CPU generator, so a seed reproduces diffusers' image.
/// </summary>
/// <remarks>
/// Sizes: an input image whose size (or the requested Width/Height) is not a multiple of the VAE factor (8; 4 in
/// low-res pixels for the upscaler) is resized down to the nearest multiple, as diffusers' image processor does, and
/// the change is reported through <see cref="PipelineObserver.Log"/>. A mask of another size than the image is resized
/// to it with a <see cref="PipelineObserver.Warn"/>.
/// </remarks>
public static class StableDiffusionPipeline
{
    /// <summary>The x4 upscaler's default tile edge in latent (= low-res) pixels: 128 → 512×512 output tiles.</summary>
    public const int DefaultUpscaleTileSize = UpscaleTask.DefaultTileEdge;

    /// <summary>Decoder tile edge in latent pixels for a tiled decode
    /// (<see cref="GenerationRequest.DecoderTileSize"/>): 64 → 512×512 pixel tiles for the f=8 VAE, diffusers'
    /// tile_sample_min_size; its decode peaks near 1.3 GiB.</summary>
    public const int DefaultDecoderTileSize = 64;

    /// <summary>The pipeline <paramref name="request"/> runs on <paramref name="model"/>: its input's, except that an
    /// image on a depth model is depth-to-image.</summary>
    /// <exception cref="PipelineMismatchException">The model does not serve the request's task.</exception>
    public static PipelineKind KindOf(StableDiffusionModel model, GenerationRequest request) =>
        PipelineTask.For(model, request).Kind;

    /// <exception cref="PipelineMismatchException">The model does not serve the request's task, or a depth model got
    /// no depth map.</exception>
    /// <exception cref="ArgumentException">A missing or malformed input; <see cref="ArgumentOutOfRangeException"/> for
    /// values out of range (strength, noise level, steps, sizes, tile size).</exception>
    public static GenerationResult Generate(
        StableDiffusionModel model, GenerationRequest request, PipelineObserver? observer = null)
    {
        observer ??= PipelineObserver.None;
        request = Lora.LoraPromptTags.WithoutTags(request);
        WarnOfNegativePromptTags(request, observer);
        var task = PipelineTask.For(model, request);
        RequestRules.Check(request, model.SchedulerConfig.ClassName ?? "DDIM");
        task.Check(model);
        var timings = new Dictionary<string, double>();

        using var noGrad = torch.no_grad();
        // LoRAs change the model for this call only; disposing puts the base weights back (also on error and Ctrl+C).
        using var loras = Lora.AppliedLoras.Apply(model, request.Loras, observer.Log, observer.Warn);
        using var scope = torch.NewDisposeScope();
        using var generatorNoise = request.NoiseOverride is null ? new GeneratorNoiseSource(request.Seed) : null;
        var run = new PipelineRun(model, request, observer, request.NoiseOverride ?? generatorNoise!);

        // 1. Text embeddings, computed once per prompt and repeated for the batch: [uncond, cond] when guided.
        var clock = Stopwatch.StartNew();
        // 1 × [B, 77·k, D] or 2 × [N, 77·k_i, D]
        var embeds = EncodePrompts(run);
        timings["text_encoder"] = clock.Elapsed.TotalSeconds;

        // 2-3. The task's input image and the conditioning that needs no noise; the output and latent sizes. A call
        // that cannot fit in memory is refused here, before the heavy work.
        task.Prepare(run);
        var unetTiles = ResolveTiling(request, task, run.LatentHeight, run.LatentWidth);
        MemoryBudget.Check(run, unetTiles, DecoderTiling(run, unetTiles), DeviceMemory.Of(model));

        // 4. Scheduler and timesteps (cut by strength where an image starts the loop).
        using var scheduler = CreateScheduler(model, request);
        run.Scheduler = scheduler;
        run.Timesteps = SetTimesteps(run, task);
        IReadOnlyList<double> timesteps = run.Timesteps.to(ScalarType.Float64).data<double>().ToArray();

        // 5. Initial latents, drawing noise in diffusers' order for the task.
        clock.Restart();
        // [N, 4, h, w]
        var latents = task.PrepareLatents(run);
        run.Inspect("initial_latents", latents);
        if (run.EncodeCount > 0) timings["vae_encode"] = clock.Elapsed.TotalSeconds;

        // 6. Denoising loop. Latents stay float32 between steps; the UNet computes in the model dtype.
        clock.Restart();
        latents = Denoise(run, task, embeds, latents, timesteps, unetTiles);
        timings["denoise"] = clock.Elapsed.TotalSeconds;
        run.Inspect("final_latents", latents);
        observer.Log?.Invoke($"Ran {timesteps.Count} {scheduler.Name} steps in {clock.Elapsed.TotalSeconds:F2} s.");

        // 7. Decode, tiled where the UNet was or where asked; 8. what the task does with the pixels.
        observer.Cancellation.ThrowIfCancellationRequested();
        clock.Restart();
        // [N, 3, H, W]
        var decoded = Decode(run, latents, unetTiles, out int decoderTileCount);
        timings["vae_decode"] = clock.Elapsed.TotalSeconds;
        observer.Log?.Invoke(
            $"Decoded {run.Count} image(s) of {run.Width}x{run.Height} in {clock.Elapsed.TotalSeconds:F2} s.");
        decoded = task.Finish(decoded, run);

        return new GenerationResult
        {
            Images = decoded.MoveToOuterDisposeScope(),
            Width = run.Width,
            Height = run.Height,
            Kind = task.Kind,
            Input = task.Input,
            SchedulerName = scheduler.Name,
            SchedulerConfig = scheduler.Config,
            Timesteps = timesteps,
            Timings = timings,
            UnetTiles = unetTiles?.Count(run.LatentHeight, run.LatentWidth) ?? 1,
            DecoderTiles = decoderTileCount,
            Embeddings = run.Embeddings,
            Loras = loras.Applied,
        };
    }

    /// <summary>As in AUTOMATIC1111, extra networks come from the prompt only: a negative prompt's LoRA tag stays
    /// text and applies nothing, which the user is told.</summary>
    private static void WarnOfNegativePromptTags(GenerationRequest request, PipelineObserver observer)
    {
        if (Lora.LoraPromptTags.TagsIn(request.NegativePrompt) is not { Count: > 0 } tags) return;
        observer.Warn?.Invoke($"The negative prompt's {string.Join(" ", tags)} is read as text and applies no " +
            "LoRA (as in AUTOMATIC1111, LoRAs come from the prompt's tags and the Lora parameter only).");
    }

    /// <summary>Step 1: the prompt's conditioning, and the negative prompt's before it when guided. One tensor
    /// [B, 77·k, D] when both have the same length; else, as AUTOMATIC1111 does, the two halves apart
    /// ([N, 77·k_neg, D], [N, 77·k, D]), which the loop then sends through the UNet in two calls.</summary>
    private static Tensor[] EncodePrompts(PipelineRun run)
    {
        var clock = Stopwatch.StartNew();
        var encoder = run.Model.PromptEncoder;
        var syntax = run.Request.PromptSyntax;
        using var library = syntax == Text.PromptSyntax.None
            ? null : Text.Embeddings.EmbeddingUse.Open(run.Request.EmbeddingPaths,
            run.Model.Tokenizer, run.Model.TextEncoder.Config.HiddenSize, run.Observer.Log, run.Observer.Warn);
        // [1, 77·k, D]
        var prompt = encoder.Encode(run.Request.Prompt, syntax, run.Observer.Warn, library);
        run.Inspect("prompt_embeds", prompt.Embeds);
        // [N, 77·k, D]
        var embeds = prompt.Embeds.repeat(run.Count, 1, 1);
        var negativeFromCache = false;
        Tensor[] conditioning = [embeds];
        if (run.Guided)
        {
            // [1, 77·k_neg, D]
            var negative = encoder.Encode(run.Request.NegativePrompt, syntax, run.Observer.Warn, library);
            run.Inspect("negative_prompt_embeds", negative.Embeds);
            negativeFromCache = negative.FromCache;
            // [N, 77·k_neg, D]
            var negatives = negative.Embeds.repeat(run.Count, 1, 1);
            conditioning = negatives.shape[1] == embeds.shape[1]
                // [2N, 77·k, D]
                ? [torch.cat(new[] { negatives, embeds })]
                : [negatives, embeds];
            if (conditioning.Length == 2)
                run.Observer.Log?.Invoke(
                    $"The prompt is {embeds.shape[1] / 77} chunks of 77 tokens and the negative prompt " +
                    $"{negatives.shape[1] / 77}: each step runs the UNet twice (negative, then prompt) instead of " +
                    $"once on a batch of both, as AUTOMATIC1111 does.");
        }
        run.Embeddings = Text.Embeddings.EmbeddingUse.Finish(
            library, run.Request.ExpectedEmbeddings, run.Observer.Log, run.Observer.Warn);
        var reused = (prompt.FromCache, negativeFromCache) switch
        {
            (true, true) => " (both from the model's embedding cache)",
            (true, false) => " (the prompt's from the model's embedding cache)",
            (false, true) => " (the negative prompt's from the model's embedding cache)",
            _ => "",
        };
        run.Observer.Log?.Invoke(
            $"Encoded the prompt{(run.Guided ? " and the negative prompt" : "")} " +
            $"in {clock.Elapsed.TotalSeconds:F2} s{reused}.");
        return conditioning;
    }

    /// <summary>Step 4: the scheduler's timesteps, cut by the task's strength where it has one: [k].</summary>
    private static Tensor SetTimesteps(PipelineRun run, PipelineTask task)
    {
        var scheduler = run.Scheduler;
        scheduler.SetTimesteps(run.Request.Steps);
        run.Inspect("scheduler_timesteps_full", scheduler.Timesteps);
        if (scheduler.Sigmas is { } sigmas) run.Inspect("scheduler_sigmas_full", sigmas);
        var timesteps = scheduler.Timesteps;
        if (task.Strength is double strength)
        {
            var schedule = scheduler.ApplyStrength(strength);
            if (schedule.NumInferenceSteps < 1)
                throw new ArgumentOutOfRangeException("request", strength,
                    $"Strength {strength} with {run.Request.Steps} steps leaves no denoising " +
                    $"step (int(steps × strength) = 0); raise the strength or the steps.");
            timesteps = schedule.Timesteps;
        }
        run.Inspect("timesteps", timesteps);
        run.Inspect("init_noise_sigma", torch.tensor((float)scheduler.InitNoiseSigma));
        return timesteps;
    }

    /// <summary>Step 6: the loop, with classifier-free guidance and the task's extra UNet channels.</summary>
    private static Tensor Denoise(PipelineRun run, PipelineTask task, Tensor[] conditioning, Tensor latents,
        IReadOnlyList<double> timesteps, TilePlan? tiles)
    {
        var model = run.Model;
        var scheduler = run.Scheduler;
        if (tiles is not null)
            run.Observer.Log?.Invoke(
                $"Tiled UNet: {tiles.Count(run.LatentHeight, run.LatentWidth)} tiles of " +
                $"{Math.Min(tiles.TileSize, run.LatentWidth)}x{Math.Min(tiles.TileSize, run.LatentHeight)} latent " +
                $"pixels (overlap {tiles.Overlap}) per step over the {run.LatentWidth}x{run.LatentHeight} latent.");
        return DenoisingLoop.Run(scheduler, timesteps, latents, run.Noise, run.Observer, (current, t, name) =>
        {
            // [2N, 4, h, w]
            var modelInput = run.Guided ? torch.cat(new[] { current, current }) : current;
            // [2N, C, h, w]
            modelInput = task.ConcatConditioning(scheduler.ScaleModelInput(modelInput, t));
            run.Inspect(name + "_unet_input", modelInput);
            var timestep = torch.tensor(t, ScalarType.Float32, run.Device);
            run.Inspect(name + "_timestep", timestep);
            var classLabels = task.ClassLabels;
            if (classLabels is not null) run.Inspect(name + "_class_labels", classLabels);
            var unetInput = modelInput.to(model.Target.DType);
            Tensor Unet(Tensor input, Tensor embeds, Tensor? labels) => tiles is null
                ? model.Unet.forward(input, timestep, embeds, labels)
                : TiledInference.Run(input, tiles, 1, tile => model.Unet.forward(tile, timestep, embeds, labels));
            var unetOutput = (conditioning.Length == 1
                ? Unet(unetInput, conditioning[0], classLabels)
                // [2N, 4, h, w]
                : SplitGuidanceUnet(unetInput, conditioning, classLabels, Unet)).to(ScalarType.Float32);
            run.Inspect(name + "_unet_output", unetOutput);
            if (!run.Guided) return unetOutput;
            // 2 × [N, 4, h, w]
            var chunks = unetOutput.chunk(2);
            return (ScalarSafeTensor)chunks[0] + run.Request.GuidanceScale * (ScalarSafeTensor)(chunks[1] - chunks[0]);
        });
    }

    /// <summary>The negative and the prompt half of a guided batch through the UNet one after the other, each with its
    /// own conditioning (their lengths differ): [2N, 4, h, w].</summary>
    private static Tensor SplitGuidanceUnet(Tensor unetInput, Tensor[] conditioning, Tensor? classLabels,
        Func<Tensor, Tensor, Tensor?, Tensor> unet)
    {
        // 2 × [N, C, h, w]
        var inputs = unetInput.chunk(2);
        var labels = classLabels?.chunk(2);                                                                  // 2 × [N]
        // [N, 4, h, w]
        var negative = unet(inputs[0], conditioning[0], labels?[0]);
        // [N, 4, h, w]
        var positive = unet(inputs[1], conditioning[1], labels?[1]);
        // [2N, 4, h, w]
        return torch.cat(new[] { negative, positive });
    }

    /// <summary>Step 7: the VAE decode (the upscaler's VAE is float32, as diffusers upcasts it): [N, 3, H, W] float32
    /// on the CPU.</summary>
    private static Tensor Decode(PipelineRun run, Tensor latents, TilePlan? unetTiles, out int tileCount)
    {
        var model = run.Model;
        var request = run.Request;
        TorchMemory.ReleaseFreeHeap(); // the UNet's freed activations, before the decoder allocates its own
        // [N, 4, h, w]
        var vaeInput = ((ScalarSafeTensor)latents / model.Vae.Config.ScalingFactor).Tensor;
        run.Inspect("vae_decode_input", vaeInput);
        var vaeDType = model.VaeDType;
        var tiles = DecoderTiling(run, unetTiles);
        tileCount = tiles?.Count(run.LatentHeight, run.LatentWidth) ?? 1;
        var decoded = (tiles is null
            ? model.Vae.Decode(vaeInput.to(vaeDType))
            : TiledInference.Run(vaeInput.to(vaeDType), tiles, model.VaeScaleFactor, tile => model.Vae.Decode(tile)))
            // [N, 3, H, W]
            .to(ScalarType.Float32).cpu();
        if (tiles is not null)
            run.Observer.Log?.Invoke(
                $"Tiled VAE decoder: {tileCount} tiles of " +
                $"{Math.Min(tiles.TileSize, run.LatentWidth) * model.VaeScaleFactor}x" +
                $"{Math.Min(tiles.TileSize, run.LatentHeight) * model.VaeScaleFactor} " +
                $"pixels (overlap {tiles.Overlap * model.VaeScaleFactor}).");
        run.Inspect("vae_decode_output", decoded);
        NonFiniteOutputException.ThrowIfNotFinite(decoded, "VAE decoder");
        return decoded;
    }

    /// <summary>
    /// The UNet tiling for this call, or null to run whole: an explicit TileSize tiles any task whose latent exceeds
    /// it; by default only the x4 upscaler tiles, at <see cref="DefaultUpscaleTileSize"/>.
    /// </summary>
    private static TilePlan? ResolveTiling(
        GenerationRequest request, PipelineTask task, int latentHeight, int latentWidth)
    {
        int? size = request.TileSize switch
        {
            0 => null,
            int given => given,
            null => task.DefaultTileSize,
        };
        return size is int tile
            ? ResolveTiling(tile, request.TileOverlap, latentHeight, latentWidth, nameof(request.TileSize)) : null;
    }

    /// <summary>The decoder's tiling: the UNet's, unless the request sets its own (DecoderTileSize; 0: none).</summary>
    private static TilePlan? DecoderTiling(PipelineRun run, TilePlan? unetTiles) =>
        run.Request.DecoderTileSize is not int size
            ? unetTiles
            : ResolveTiling(
                size, run.Request.TileOverlap, run.LatentHeight, run.LatentWidth, nameof(run.Request.DecoderTileSize));

    /// <summary>Tiles of <paramref name="tile"/> latent pixels (0: none), or null when the latent
    /// fits in one.</summary>
    /// <param name="name">The request property the size came from, for the error.</param>
    internal static TilePlan? ResolveTiling(
        int tile, int? overlapOrNull, int latentHeight, int latentWidth, string name)
    {
        if (tile == 0) return null;
        if (tile < 8)
            throw new ArgumentOutOfRangeException(
                name, tile, $"{name} must be 0 (no tiles) or at least 8 latent pixels, not {tile}.");
        if (Math.Max(latentHeight, latentWidth) <= tile) return null;
        int overlap = overlapOrNull ?? tile / 4;
        if (overlap < 0 || overlap >= tile)
            throw new ArgumentOutOfRangeException(
                "TileOverlap", overlap, $"TileOverlap must be in 0..{tile - 1} for tiles of {tile}, not {overlap}.");
        return new TilePlan(tile, overlap);
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
}
