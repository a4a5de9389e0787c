using System.Diagnostics;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Runtime;
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

    /// <summary>The pipeline that ran.</summary>
    public PipelineKind Kind { get; init; } = PipelineKind.Txt2Img;
    public required string SchedulerName { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }
    public required IReadOnlyList<double> Timesteps { get; init; }

    /// <summary>Seconds per stage: text_encoder, denoise, vae_decode (and vae_encode where an image came in).</summary>
    public required IReadOnlyDictionary<string, double> Timings { get; init; }

    /// <summary>How many latent tiles the UNet ran per step, and the VAE decoded (1 = not tiled).</summary>
    public int UnetTiles { get; init; } = 1;
    public int DecoderTiles { get; init; } = 1;

    public void Dispose() => Images.Dispose();
}

/// <summary>
/// The Stable Diffusion 2.x denoising loop, as diffusers' pipelines run it, for every variant: text-to-image and
/// image-to-image (4-channel UNet), inpainting (9), depth-to-image (5) and the x4 upscaler (7). RNG draws happen in
/// diffusers' order on one CPU generator, so a seed reproduces diffusers' image.
/// </summary>
/// <remarks>
/// Sizes: an input image whose size (or the requested Width/Height) is not a multiple of the VAE factor (8; 4 in
/// low-res pixels for the upscaler) is resized down to the nearest multiple, as diffusers' image processor does, and
/// the change is reported through <see cref="PipelineObserver.Log"/>. A text-to-image size that is not a multiple is
/// refused. A mask of another size than the image is resized to it with a <see cref="PipelineObserver.Warn"/>.
/// </remarks>
public static class StableDiffusionPipeline
{
    /// <summary>The x4 upscaler's default tile edge in latent (= low-res) pixels: 128 → 512×512 output tiles.</summary>
    public const int DefaultUpscaleTileSize = 128;

    /// <summary>Decoder tile edge in latent pixels for a tiled decode (<see cref="GenerationRequest.DecoderTileSize"/>):
    /// 64 → 512×512 pixel tiles for the f=8 VAE, diffusers' tile_sample_min_size; its decode peaks near 1.3 GiB.</summary>
    public const int DefaultDecoderTileSize = 64;

    /// <summary>The x4 upscaler's max_noise_level (diffusers' default and the released model's).</summary>
    public const int MaxNoiseLevel = 350;

    /// <summary>The pipeline a request implies: a mask → inpaint, a depth map → depth2img, a non-base model → its own
    /// pipeline, an init image → img2img, else txt2img.</summary>
    public static PipelineKind InferKind(StableDiffusionModel model, GenerationRequest request) =>
        request.Mask is not null ? PipelineKind.Inpaint
        : request.DepthMap is not null ? PipelineKind.Depth2Img
        : model.Kind != ModelKind.TextToImage ? model.Kind.DefaultPipeline()
        : request.InitImage is not null ? PipelineKind.Img2Img
        : PipelineKind.Txt2Img;

    public static GenerationResult Generate(StableDiffusionModel model, GenerationRequest request, PipelineObserver? observer = null) =>
        Generate(model, request, InferKind(model, request), observer);

    /// <exception cref="PipelineMismatchException">The model's variant does not serve <paramref name="kind"/>, or the request
    /// carries an input (mask, depth map) that belongs to another pipeline.</exception>
    /// <exception cref="ArgumentException">A missing or malformed input; <see cref="ArgumentOutOfRangeException"/> for
    /// values out of range (strength, noise level, steps, tile size).</exception>
    /// <exception cref="NotSupportedException">Depth-to-image without a depth map (MiDaS is not available).</exception>
    public static GenerationResult Generate(StableDiffusionModel model, GenerationRequest request, PipelineKind kind,
        PipelineObserver? observer = null)
    {
        observer ??= PipelineObserver.None;
        CheckRequest(model, request, kind);
        var cancellation = observer.Cancellation;
        var timings = new Dictionary<string, double>();

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var generatorNoise = request.NoiseOverride is null ? new GeneratorNoiseSource(request.Seed) : null;
        INoiseSource noise = request.NoiseOverride ?? generatorNoise!;
        var device = model.Target.Device;
        var dtype = model.Target.DType;
        // Every draw is float32 on the CPU generator, whatever the compute dtype: a bfloat16 randn is another sequence
        // of numbers, so drawing in the compute dtype would make the same seed paint another picture in bfloat16.
        // In float32 this is exactly diffusers' draw.
        const ScalarType noiseDType = ScalarType.Float32;
        bool guided = request.GuidanceScale > 1.0;
        int count = request.Count;
        int batch = guided ? 2 * count : count;

        // 1. Text embeddings, computed once per prompt and repeated for the batch: [uncond, cond] when guided.
        var clock = Stopwatch.StartNew();
        var promptEmbeds = EncodePrompt(model, request.Prompt, observer, out bool promptCached);   // [1, 77, D]
        observer.Inspect?.Invoke("prompt_embeds", promptEmbeds);
        Tensor embeds = promptEmbeds.repeat(count, 1, 1);                                         // [N, 77, D]
        bool negativeCached = false;
        if (guided)
        {
            var negativeEmbeds = EncodePrompt(model, request.NegativePrompt, observer, out negativeCached); // [1, 77, D]
            observer.Inspect?.Invoke("negative_prompt_embeds", negativeEmbeds);
            embeds = torch.cat(new[] { negativeEmbeds.repeat(count, 1, 1), embeds });            // [2N, 77, D]
        }
        timings["text_encoder"] = clock.Elapsed.TotalSeconds;
        var reused = (promptCached, guided && negativeCached) switch
        {
            (true, true) => " (both from the model's embedding cache)",
            (true, false) => " (the prompt's from the model's embedding cache)",
            (false, true) => " (the negative prompt's from the model's embedding cache)",
            _ => "",
        };
        observer.Log?.Invoke($"Encoded the prompt{(guided ? " and the negative prompt" : "")} in {clock.Elapsed.TotalSeconds:F2} s{reused}.");

        // 2. Input image at a size the VAE (or the upscaler's UNet) accepts; output and latent sizes.
        Tensor? image = null;                                                                    // [1, 3, H, W] in [-1, 1]
        int width, height, latentWidth, latentHeight;
        if (kind == PipelineKind.Txt2Img)
        {
            (width, height) = ResolveSize(model, request);
            (latentWidth, latentHeight) = (width / model.VaeScaleFactor, height / model.VaeScaleFactor);
        }
        else
        {
            image = PrepareImage(model, request, kind, observer, out var inputWidth, out var inputHeight).to(device);
            observer.Inspect?.Invoke("image_preprocess0_output", image);
            if (kind == PipelineKind.Upscale)
            {
                (latentWidth, latentHeight) = (inputWidth, inputHeight);
                (width, height) = (inputWidth * model.VaeScaleFactor, inputHeight * model.VaeScaleFactor);
            }
            else
            {
                (width, height) = (inputWidth, inputHeight);
                (latentWidth, latentHeight) = (width / model.VaeScaleFactor, height / model.VaeScaleFactor);
            }
        }

        // 3. Mask / depth conditioning that needs no noise (diffusers prepares them before the latents).
        Tensor? repaintMask = null;                                                              // [1, 1, H, W] binarised
        Tensor? maskedImage = null;
        if (kind == PipelineKind.Inpaint)
        {
            var mask = PrepareMask(request, image!, observer);
            repaintMask = ImageConditioning.Binarize(mask).to(device);
            observer.Inspect?.Invoke("mask_preprocessed", repaintMask);
            maskedImage = image! * (repaintMask < 0.5).to(ScalarType.Float32);                   // [1, 3, H, W]
            observer.Inspect?.Invoke("masked_image", maskedImage);
        }
        Tensor? depthCondition = null;
        if (kind == PipelineKind.Depth2Img)
        {
            var depth = ImageConditioning.NormalizeDepth(request.DepthMap!);                   // [1, Hd, Wd]
            observer.Inspect?.Invoke("input_depth_map", depth);
            if (depth.shape[1] != height || depth.shape[2] != width)
                observer.Log?.Invoke($"The {depth.shape[2]}x{depth.shape[1]} depth map is resized (bicubic) to the {latentWidth}x{latentHeight} latent of the {width}x{height} image.");
            var processed = ImageConditioning.ProcessDepthMap(depth.to(device), latentHeight, latentWidth);  // [1, 1, h, w]
            depthCondition = processed.repeat(batch, 1, 1, 1);                                   // [2N, 1, h, w]
            observer.Inspect?.Invoke("depth_map_processed", depthCondition);
        }

        // 4. Scheduler and timesteps (cut by strength where an image starts the loop).
        using var scheduler = CreateScheduler(model, request);
        scheduler.SetTimesteps(request.Steps);
        observer.Inspect?.Invoke("scheduler_timesteps_full", scheduler.Timesteps);
        if (scheduler.Sigmas is { } sigmas) observer.Inspect?.Invoke("scheduler_sigmas_full", sigmas);
        Tensor timestepTensor = scheduler.Timesteps;
        if (UsesStrength(kind))
        {
            var schedule = scheduler.ApplyStrength(request.Strength);
            if (schedule.NumInferenceSteps < 1)
                throw new ArgumentOutOfRangeException(nameof(request), request.Strength,
                    $"Strength {request.Strength} with {request.Steps} steps leaves no denoising step (int(steps × strength) = 0); raise the strength or the steps.");
            timestepTensor = schedule.Timesteps;
        }
        IReadOnlyList<double> timesteps = timestepTensor.to(ScalarType.Float64).data<double>().ToArray();
        observer.Inspect?.Invoke("timesteps", timestepTensor);
        observer.Inspect?.Invoke("init_noise_sigma", torch.tensor((float)scheduler.InitNoiseSigma));

        // 5. Initial latents, drawing noise in diffusers' order for each pipeline.
        clock.Restart();
        int encodeIndex = 0;
        long[] latentShape = { count, model.Unet.Config.OutChannels, latentHeight, latentWidth };
        Tensor latents;
        Tensor? maskLatents = null, maskedImageLatents = null, lowResCondition = null, classLabels = null;
        switch (kind)
        {
            case PipelineKind.Txt2Img:
                // noise × init_noise_sigma, drawn on the CPU generator in the compute dtype, as diffusers does.
                latents = noise.Randn(latentShape, noiseDType).to(device) * scheduler.InitNoiseSigma;  // [N, 4, h, w]
                break;

            case PipelineKind.Img2Img or PipelineKind.Depth2Img:
            {
                // prepare_latents: sample the posterior (one draw for the one image), scale, repeat for the batch,
                // then noise of the batch shape added at the first timestep of the cut schedule.
                var imageLatents = EncodeImage(model, image!, noise, $"vae_encode{encodeIndex++}", observer).repeat(count, 1, 1, 1);  // [N, 4, h, w]
                latents = AddNoise(scheduler, imageLatents, noise, dtype, timestepTensor, count, observer);
                break;
            }

            case PipelineKind.Inpaint:
            {
                // prepare_latents: strength 1 starts from pure noise × init_noise_sigma (the image is not encoded);
                // below 1, the image latents (drawn first) are noised at the first timestep.
                bool strengthMax = request.Strength >= 1.0;
                if (strengthMax)
                {
                    latents = noise.Randn(latentShape, noiseDType).to(device) * scheduler.InitNoiseSigma;  // [N, 4, h, w]
                }
                else
                {
                    var imageLatents = EncodeImage(model, image!, noise, $"vae_encode{encodeIndex++}", observer).repeat(count, 1, 1, 1);  // [N, 4, h, w]
                    latents = AddNoise(scheduler, imageLatents, noise, dtype, timestepTensor, count, observer);
                }
                // prepare_mask_latents: the mask at latent size (nearest), the masked image encoded (a posterior draw).
                var smallMask = nn.functional.interpolate(repaintMask!, size: new long[] { latentHeight, latentWidth },
                    mode: InterpolationMode.Nearest);                                                // [1, 1, h, w]
                var maskedLatents = EncodeImage(model, maskedImage!, noise, $"vae_encode{encodeIndex++}", observer);  // [1, 4, h, w]
                maskLatents = smallMask.repeat(batch, 1, 1, 1);                                      // [2N, 1, h, w]
                maskedImageLatents = maskedLatents.repeat(batch, 1, 1, 1);                           // [2N, 4, h, w]
                observer.Inspect?.Invoke("mask_latents", maskLatents);
                observer.Inspect?.Invoke("masked_image_latents", maskedImageLatents);
                break;
            }

            case PipelineKind.Upscale:
            {
                // The low-res image is noised by the DDPM low_res_scheduler at t = noise_level (drawn first), then the
                // latents are drawn at the low-res size.
                using var lowResScheduler = SchedulerRegistry.FromConfig(model.LowResSchedulerConfig!);
                var noiseLevel = torch.tensor(new long[] { request.NoiseLevel }, ScalarType.Int64, device);  // [1]
                observer.Inspect?.Invoke("lowres_add_noise_input", image!);
                var lowResNoise = noise.Randn(image!.shape, noiseDType).to(device);   // [1, 3, h, w]
                observer.Inspect?.Invoke("lowres_noise", lowResNoise);
                observer.Inspect?.Invoke("noise_level", noiseLevel);
                var noised = lowResScheduler.AddNoise(image, lowResNoise, noiseLevel);              // [1, 3, h, w]
                observer.Inspect?.Invoke("lowres_noised_image", noised);
                lowResCondition = noised.repeat(batch, 1, 1, 1);                                     // [2N, 3, h, w]
                classLabels = noiseLevel.repeat(batch);                                              // [2N]
                latents = noise.Randn(latentShape, noiseDType).to(device) * scheduler.InitNoiseSigma;  // [N, 4, h, w]
                break;
            }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Unknown pipeline kind {kind}.");
        }
        observer.Inspect?.Invoke("initial_latents", latents);
        if (encodeIndex > 0) timings["vae_encode"] = clock.Elapsed.TotalSeconds;

        // 6. Denoising loop. Latents stay float32 between steps; the UNet computes in the model dtype.
        var unetTiles = ResolveTiling(model, request, kind, latentHeight, latentWidth);
        int unetTileCount = unetTiles?.Count(latentHeight, latentWidth) ?? 1;
        if (unetTiles is not null)
            observer.Log?.Invoke($"Tiled UNet: {unetTileCount} tiles of {Math.Min(unetTiles.TileSize, latentWidth)}x{Math.Min(unetTiles.TileSize, latentHeight)} latent pixels (overlap {unetTiles.Overlap}) per step over the {latentWidth}x{latentHeight} latent.");
        clock.Restart();
        latents = DenoisingLoop.Run(scheduler, timesteps, latents, noise, observer, (current, t, name) =>
        {
            var modelInput = guided ? torch.cat(new[] { current, current }) : current;        // [2N, 4, h, w]
            modelInput = scheduler.ScaleModelInput(modelInput, t);
            modelInput = kind switch
            {
                PipelineKind.Inpaint => torch.cat(new[] { modelInput, maskLatents!, maskedImageLatents! }, 1),  // [2N, 9, h, w]
                PipelineKind.Depth2Img => torch.cat(new[] { modelInput, depthCondition! }, 1),                 // [2N, 5, h, w]
                PipelineKind.Upscale => torch.cat(new[] { modelInput, lowResCondition! }, 1),                  // [2N, 7, h, w]
                _ => modelInput,
            };
            observer.Inspect?.Invoke(name + "_unet_input", modelInput);
            var timestep = torch.tensor(t, ScalarType.Float32, device);
            observer.Inspect?.Invoke(name + "_timestep", timestep);
            if (classLabels is not null) observer.Inspect?.Invoke(name + "_class_labels", classLabels);
            var unetInput = modelInput.to(dtype);
            var unetOutput = (unetTiles is null
                ? model.Unet.forward(unetInput, timestep, embeds, classLabels)
                : TiledInference.Run(unetInput, unetTiles, 1, tile => model.Unet.forward(tile, timestep, embeds, classLabels)))
                .to(ScalarType.Float32);                                                          // [2N, 4, h, w]
            observer.Inspect?.Invoke(name + "_unet_output", unetOutput);
            if (!guided) return unetOutput;
            var chunks = unetOutput.chunk(2);                                                     // 2 × [N, 4, h, w]
            return chunks[0] + request.GuidanceScale * (chunks[1] - chunks[0]);
        });
        timings["denoise"] = clock.Elapsed.TotalSeconds;
        observer.Inspect?.Invoke("final_latents", latents);
        observer.Log?.Invoke($"Ran {timesteps.Count} {scheduler.Name} steps in {clock.Elapsed.TotalSeconds:F2} s.");

        // 7. Decode (the upscaler's VAE is float32, as diffusers upcasts it), tiled where the UNet was or where asked.
        cancellation.ThrowIfCancellationRequested();
        clock.Restart();
        TorchMemory.ReleaseFreeHeap(); // the UNet's freed activations, before the decoder allocates its own
        var vaeInput = latents / model.Vae.Config.ScalingFactor;                                  // [N, 4, h, w]
        observer.Inspect?.Invoke("vae_decode_input", vaeInput);
        var vaeDType = model.VaeDType;
        var decoderTiles = request.DecoderTileSize is null
            ? unetTiles
            : ResolveTiling(request.DecoderTileSize.Value, request.TileOverlap, latentHeight, latentWidth, "DecoderTileSize");
        int decoderTileCount = decoderTiles?.Count(latentHeight, latentWidth) ?? 1;
        var decoded = (decoderTiles is null
            ? model.Vae.Decode(vaeInput.to(vaeDType))
            : TiledInference.Run(vaeInput.to(vaeDType), decoderTiles, model.VaeScaleFactor, tile => model.Vae.Decode(tile)))
            .to(ScalarType.Float32).cpu();                                                        // [N, 3, H, W]
        if (decoderTiles is not null)
            observer.Log?.Invoke($"Tiled VAE decoder: {decoderTileCount} tiles of {Math.Min(decoderTiles.TileSize, latentWidth) * model.VaeScaleFactor}x{Math.Min(decoderTiles.TileSize, latentHeight) * model.VaeScaleFactor} pixels (overlap {decoderTiles.Overlap * model.VaeScaleFactor}).");
        observer.Inspect?.Invoke("vae_decode_output", decoded);
        timings["vae_decode"] = clock.Elapsed.TotalSeconds;
        observer.Log?.Invoke($"Decoded {count} image(s) of {width}x{height} in {clock.Elapsed.TotalSeconds:F2} s.");

        // 8. Inpainting: keep the original pixels outside the mask (the VAE round trip shifts colours there).
        if (kind == PipelineKind.Inpaint && request.Composite)
        {
            var keep = repaintMask!.cpu();                                                        // [1, 1, H, W]
            decoded = decoded * keep + image!.cpu() * (1 - keep);                                 // [N, 3, H, W]
            observer.Log?.Invoke("Composited the unmasked pixels of the original image over the result.");
        }

        return new GenerationResult
        {
            Images = decoded.MoveToOuterDisposeScope(),
            Width = width,
            Height = height,
            Kind = kind,
            SchedulerName = scheduler.Name,
            SchedulerConfig = scheduler.Config,
            Timesteps = timesteps,
            Timings = timings,
            UnetTiles = unetTileCount,
            DecoderTiles = decoderTileCount,
        };
    }

    internal static bool UsesStrength(PipelineKind kind) =>
        kind is PipelineKind.Img2Img or PipelineKind.Inpaint or PipelineKind.Depth2Img;

    /// <summary>Checks the request against the model's variant and the pipeline's inputs before any work.</summary>
    internal static void CheckRequest(StableDiffusionModel model, GenerationRequest request, PipelineKind kind)
    {
        var variant = model.Kind;
        if (!variant.SupportedPipelines().Contains(kind))
        {
            var detail = kind switch
            {
                PipelineKind.Inpaint when variant == ModelKind.TextToImage =>
                    "inpainting needs an inpainting model (9-channel UNet: latents, mask and masked-image latents).",
                PipelineKind.Inpaint => "inpainting needs an inpainting model (9-channel UNet).",
                PipelineKind.Depth2Img => "depth-to-image needs a depth model (5-channel UNet: latents and depth).",
                PipelineKind.Upscale => "upscaling needs the x4 upscaler (7-channel UNet with noise-level class labels).",
                _ when variant == ModelKind.Upscale => "the x4 upscaler only upscales an image.",
                _ when variant == ModelKind.Inpaint => "an inpainting model needs an image and a mask.",
                _ when variant == ModelKind.Depth => "a depth model needs an image and a depth map.",
                _ => "this model does not serve it.",
            };
            throw new PipelineMismatchException(variant, kind, model.Source, detail);
        }
        if (request.Mask is not null && kind != PipelineKind.Inpaint)
            throw new PipelineMismatchException(variant, kind, model.Source, "a mask was given, but only inpainting (with an inpainting model) uses one.");
        if (request.DepthMap is not null && kind != PipelineKind.Depth2Img)
            throw new PipelineMismatchException(variant, kind, model.Source, "a depth map was given, but only depth-to-image (with a depth model) uses one.");

        if (request.Steps < 1) throw new ArgumentOutOfRangeException(nameof(request), request.Steps, "Steps must be at least 1.");
        if (request.Count < 1) throw new ArgumentOutOfRangeException(nameof(request), request.Count, "Count must be at least 1.");
        if (kind == PipelineKind.Txt2Img)
        {
            if (request.InitImage is not null)
                throw new ArgumentException("A text-to-image request carries an init image; ask for img2img instead.", nameof(request));
            return;
        }
        if (request.InitImage is null)
            throw new ArgumentException($"The {kind.ToString().ToLowerInvariant()} pipeline needs an init image (InitImage).", nameof(request));
        ImageConditioning.NormalizeImage(request.InitImage).Dispose();
        if (UsesStrength(kind) && (double.IsNaN(request.Strength) || request.Strength <= 0 || request.Strength > 1))
            throw new ArgumentOutOfRangeException(nameof(request), request.Strength,
                $"Strength must be in (0, 1], not {request.Strength}: 0 would run no denoising step at all.");
        switch (kind)
        {
            case PipelineKind.Inpaint when request.Mask is null:
                throw new ArgumentException("Inpainting needs a mask (Mask: [1, 1, H, W] in [0, 1], 1 = repaint).", nameof(request));
            case PipelineKind.Inpaint:
                ImageConditioning.NormalizeMask(request.Mask).Dispose();
                break;
            case PipelineKind.Depth2Img when request.DepthMap is null:
                throw new NotSupportedException(
                    "Depth-to-image without a depth map needs MiDaS depth estimation, which is not available yet; pass a depth map (DepthMap, e.g. a 16-bit grayscale PNG).");
            case PipelineKind.Depth2Img:
                ImageConditioning.NormalizeDepth(request.DepthMap).Dispose();
                break;
            case PipelineKind.Upscale:
                if (request.NoiseLevel is < 0 or > MaxNoiseLevel)
                    throw new ArgumentOutOfRangeException(nameof(request), request.NoiseLevel,
                        $"NoiseLevel must be in 0..{MaxNoiseLevel}, not {request.NoiseLevel}.");
                if (model.LowResSchedulerConfig is null)
                    throw new InvalidDataException($"The x4 upscaler '{model.Source}' has no low_res_scheduler config.");
                break;
        }
        if (request.TileSize is < 0)
            throw new ArgumentOutOfRangeException(nameof(request), request.TileSize, "TileSize must be 0 (no tiling) or positive.");
    }

    /// <summary>
    /// The init image at the size the pipeline runs: the requested size (for the upscaler, the output size ÷ 4) or the
    /// image's own, rounded down to a multiple of the VAE factor; resized (Lanczos, bicubic for the upscaler, as
    /// diffusers' image processors) when that differs from the image. Returns [1, 3, h, w] float32.
    /// </summary>
    private static Tensor PrepareImage(StableDiffusionModel model, GenerationRequest request, PipelineKind kind,
        PipelineObserver observer, out int width, out int height)
    {
        var image = ImageConditioning.NormalizeImage(request.InitImage!);
        int imageHeight = (int)image.shape[2], imageWidth = (int)image.shape[3];
        int factor = model.VaeScaleFactor;
        int outputPerInput = kind == PipelineKind.Upscale ? factor : 1;
        int wantedWidth = request.Width is int w ? w / outputPerInput : imageWidth;
        int wantedHeight = request.Height is int h ? h / outputPerInput : imageHeight;
        width = wantedWidth - wantedWidth % factor;
        height = wantedHeight - wantedHeight % factor;
        if (width < factor || height < factor)
            throw new ArgumentOutOfRangeException(nameof(request), $"{wantedWidth}x{wantedHeight}",
                $"The input size {wantedWidth}x{wantedHeight} is smaller than the VAE factor {factor}.");
        if (width != wantedWidth || height != wantedHeight)
            observer.Log?.Invoke($"{wantedWidth}x{wantedHeight} is not a multiple of {factor}; using {width}x{height}.");
        if (width == imageWidth && height == imageHeight) return image;
        var filter = kind == PipelineKind.Upscale ? ResizeFilter.Bicubic : ResizeFilter.Lanczos;
        observer.Log?.Invoke($"Resized the {imageWidth}x{imageHeight} input image to {width}x{height} ({filter}).");
        return ImageConditioning.ResizeImage(image, width, height, filter);
    }

    /// <summary>
    /// The mask at the size the pipeline runs ([1, 1, H, W], not yet binarised). A mask of another size than the init
    /// image is resized with a warning; one that only follows the image's rounding to the VAE factor, silently.
    /// </summary>
    private static Tensor PrepareMask(GenerationRequest request, Tensor image, PipelineObserver observer)
    {
        var mask = ImageConditioning.NormalizeMask(request.Mask!).to(image.device);
        int maskHeight = (int)mask.shape[2], maskWidth = (int)mask.shape[3];
        int height = (int)image.shape[2], width = (int)image.shape[3];
        if (maskWidth == width && maskHeight == height) return mask;
        var init = request.InitImage!;
        if (maskWidth != init.shape[^1] || maskHeight != init.shape[^2])
            observer.Warn?.Invoke($"The {maskWidth}x{maskHeight} mask does not match the {init.shape[^1]}x{init.shape[^2]} image; it was resized to {width}x{height} (Lanczos, then binarised at 0.5).");
        return ImageConditioning.ResizeMask(mask, width, height);
    }

    /// <summary>
    /// diffusers' <c>vae.encode(image).latent_dist.sample(generator)</c> × scaling_factor: one posterior draw of the
    /// posterior's shape in the VAE's dtype. Returns float32 [1, 4, h, w].
    /// </summary>
    private static Tensor EncodeImage(StableDiffusionModel model, Tensor image, INoiseSource noise, string name, PipelineObserver observer)
    {
        var vaeDType = model.VaeDType;
        observer.Inspect?.Invoke(name + "_input", image);
        using var posterior = model.Vae.Encode(image.to(vaeDType));
        var mean = posterior.Mean.to(ScalarType.Float32);                                        // [1, 4, h, w]
        var std = posterior.Std.to(ScalarType.Float32);
        observer.Inspect?.Invoke(name + "_posterior_mean", mean);
        observer.Inspect?.Invoke(name + "_posterior_std", std);
        var sample = noise.Randn(posterior.Mean.shape, ScalarType.Float32).to(image.device);
        return (mean + std * sample) * model.Vae.Config.ScalingFactor;
    }

    /// <summary>img2img's start: noise of the batch shape (compute dtype) added at the first timestep of the cut schedule.</summary>
    private static Tensor AddNoise(SchedulerBase scheduler, Tensor imageLatents, INoiseSource noise, ScalarType dtype,
        Tensor timesteps, int count, PipelineObserver observer)
    {
        var startNoise = noise.Randn(imageLatents.shape, ScalarType.Float32).to(imageLatents.device);  // [N, 4, h, w]
        var start = timesteps.slice(0, 0, 1, 1).repeat(count);                                   // [N]
        observer.Inspect?.Invoke("add_noise_original", imageLatents);
        observer.Inspect?.Invoke("add_noise_noise", startNoise);
        observer.Inspect?.Invoke("add_noise_timestep", start);
        var noised = scheduler.AddNoise(imageLatents, startNoise, start);                        // [N, 4, h, w]
        observer.Inspect?.Invoke("add_noise_output", noised);
        return noised;
    }

    /// <summary>
    /// The tiling for this call, or null to run whole: an explicit TileSize tiles any pipeline whose latent exceeds it;
    /// by default only the x4 upscaler tiles, at <see cref="DefaultUpscaleTileSize"/>.
    /// </summary>
    internal static TilePlan? ResolveTiling(StableDiffusionModel model, GenerationRequest request, PipelineKind kind,
        int latentHeight, int latentWidth)
    {
        int? size = request.TileSize switch
        {
            0 => null,
            int given => given,
            null => kind == PipelineKind.Upscale ? DefaultUpscaleTileSize : null,
        };
        return size is int tile ? ResolveTiling(tile, request.TileOverlap, latentHeight, latentWidth, nameof(request.TileSize)) : null;
    }

    /// <summary>Tiles of <paramref name="tile"/> latent pixels (0: none), or null when the latent fits in one.</summary>
    /// <param name="name">The request property the size came from, for the error.</param>
    internal static TilePlan? ResolveTiling(int tile, int? overlapOrNull, int latentHeight, int latentWidth, string name)
    {
        if (tile == 0) return null;
        if (tile < 8) throw new ArgumentOutOfRangeException(name, tile, $"{name} must be 0 (no tiles) or at least 8 latent pixels, not {tile}.");
        if (Math.Max(latentHeight, latentWidth) <= tile) return null;
        int overlap = overlapOrNull ?? tile / 4;
        if (overlap < 0 || overlap >= tile)
            throw new ArgumentOutOfRangeException("TileOverlap", overlap, $"TileOverlap must be in 0..{tile - 1} for tiles of {tile}, not {overlap}.");
        return new TilePlan(tile, overlap);
    }

    /// <summary>Token ids for one prompt, run through the text encoder (alone, batch 1, as diffusers does), or the
    /// model's cached result for the same ids: [1, 77, D] in the model dtype.</summary>
    internal static Tensor EncodePrompt(StableDiffusionModel model, string prompt, PipelineObserver observer, out bool cached)
    {
        var encoding = model.Tokenizer.EncodeWithInfo(prompt);
        if (encoding.Truncated)
            observer.Warn?.Invoke($"The prompt is longer than the text encoder's {encoding.Ids.Length} tokens; this part was cut off: \"{encoding.DroppedText}\".");
        return model.PromptEmbeddings.GetOrAdd(encoding.Ids, () =>
        {
            var ids = torch.tensor(encoding.Ids.Select(i => (long)i).ToArray(), new long[] { 1, encoding.Ids.Length }, ScalarType.Int64, model.Target.Device);  // [1, 77]
            return model.TextEncoder.forward(ids).LastHiddenState;                               // [1, 77, D]
        }, out cached);
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
