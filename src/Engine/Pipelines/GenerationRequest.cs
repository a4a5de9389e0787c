using PSStableDiffusion.Engine.Schedulers;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>What one pipeline call should produce. Cmdlets build it from their parameters.</summary>
public sealed record GenerationRequest
{
    public required string Prompt { get; init; }
    public string NegativePrompt { get; init; } = "";
    public int Steps { get; init; } = 50;
    public double GuidanceScale { get; init; } = 7.5;
    public long Seed { get; init; }

    /// <summary>Null: the model's default size (UNet sample_size × VAE factor), or the init image's size.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    /// <summary>Images per call, drawn as diffusers' <c>num_images_per_prompt</c> (one noise tensor for the batch).</summary>
    public int Count { get; init; } = 1;

    /// <summary>A scheduler name (diffusers class or AUTOMATIC1111 name); null uses the model's own.</summary>
    public string? Scheduler { get; init; }

    /// <summary>DDIM-style eta, passed to schedulers that take it.</summary>
    public double? Eta { get; init; }

    /// <summary>Karras sigmas on schedulers that support them.</summary>
    public bool? KarrasSigmas { get; init; }

    /// <summary>
    /// img2img / inpaint / depth2img: the image to start from; x4 upscaler: the low-resolution image. A [1, 3, H, W]
    /// tensor in [-1, 1] (<see cref="SDImage.ToTensor"/>). Its size is the output size unless Width/Height are given;
    /// a size that is not a multiple of the VAE factor is resized down to the nearest multiple (reported through
    /// <see cref="PipelineObserver.Log"/>).
    /// </summary>
    public Tensor? InitImage { get; init; }

    /// <summary>How much of the schedule to run from the init image (diffusers' strength), in (0, 1]; 1 starts from pure
    /// noise (inpainting) or fully re-noises the image.</summary>
    public double Strength { get; init; } = 0.8;

    /// <summary>
    /// Inpainting: [1, 1, H, W] (or [1, H, W]) in [0, 1], 1 where to repaint (binarised at 0.5 by the pipeline).
    /// A mask whose size differs from the image's is resized to it (Lanczos, then binarised) with a warning.
    /// </summary>
    public Tensor? Mask { get; init; }

    /// <summary>
    /// Inpainting: paste the unmasked pixels of the init image back over the decoded image (pixel space, binarised mask
    /// at full resolution), so the VAE round trip cannot shift colours outside the mask. diffusers does not do this;
    /// set false for its exact output.
    /// </summary>
    public bool Composite { get; init; } = true;

    /// <summary>Depth-to-image: [1, H, W] (or [H, W], [1, 1, H, W]) depth map, any scale and size (min-max normalised).
    /// Required: MiDaS depth estimation is not available.</summary>
    public Tensor? DepthMap { get; init; }

    /// <summary>x4 upscaler: noise level (class label) added to the low-res image, 0..350.</summary>
    public int NoiseLevel { get; init; } = 20;

    /// <summary>
    /// x4 upscaler tiling, in latent pixels (= low-res pixels). Null: automatic, tiles of
    /// <see cref="StableDiffusionPipeline.DefaultUpscaleTileSize"/> once the latent is larger than that; 0: never tile;
    /// N: tiles of N×N whenever the latent exceeds N. The UNet runs per step on overlapping latent tiles whose noise
    /// predictions are blended with linear ramps over the overlap; the VAE decodes overlapping latent tiles the same way.
    /// </summary>
    public int? TileSize { get; init; }

    /// <summary>Overlap between neighbouring tiles in latent pixels; null = a quarter of the tile size.</summary>
    public int? TileOverlap { get; init; }

    /// <summary>
    /// VAE decoder tiling alone (diffusers' <c>enable_vae_tiling</c>), in latent pixels. Null: the decoder tiles where
    /// the UNet does (<see cref="TileSize"/>); 0: never; N: N×N latent tiles once the latent exceeds N, overlapping by
    /// <see cref="TileOverlap"/> (default N/4) and blended with linear ramps. It bounds the decoder's memory for large
    /// images at the cost of per-tile GroupNorm statistics (faint seams are possible). See
    /// <see cref="StableDiffusionPipeline.DefaultDecoderTileSize"/>.
    /// </summary>
    public int? DecoderTileSize { get; init; }

    /// <summary>Recorded in the generation record; null computes it from <see cref="InitImage"/> (equal to
    /// <see cref="SDImage.ComputeContentHash"/> of the image the tensor came from).</summary>
    public string? SourceImageHash { get; init; }

    /// <summary>Recorded in the generation record; null computes it from <see cref="Mask"/> as an 8-bit gray image
    /// (equal to <see cref="Imaging.GrayImage.ComputeContentHash"/> of the 8-bit mask the tensor came from).</summary>
    public string? MaskHash { get; init; }

    /// <summary>Replaces the seeded CPU generator: tests inject the noise a reference run stored.</summary>
    public INoiseSource? NoiseOverride { get; init; }
}

/// <summary>A denoising step finished.</summary>
public sealed record StepProgress(int Step, int TotalSteps, TimeSpan Elapsed)
{
    public TimeSpan? Remaining => Step == 0 ? null : Elapsed / Step * (TotalSteps - Step);
}

/// <summary>Callbacks a pipeline call reports through; all run on the calling thread.</summary>
public sealed class PipelineObserver
{
    public static PipelineObserver None { get; } = new();

    /// <summary>After each denoising step.</summary>
    public Action<StepProgress>? Progress { get; init; }

    /// <summary>Verbose log lines: what was loaded, dtype, device, timings.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Warnings the user should see (e.g. a prompt truncated to 77 tokens).</summary>
    public Action<string>? Warn { get; init; }

    /// <summary>
    /// Intermediate tensors under the names of the golden fixtures (<c>prompt_embeds</c>, <c>stepNN_unet_output</c>, …).
    /// Only tests set it; the tensor is owned by the pipeline, so copy it to keep it.
    /// </summary>
    public Action<string, Tensor>? Inspect { get; init; }

    public CancellationToken Cancellation { get; init; }
}
