using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// What one pipeline call should produce: the settings every task shares, and the task's own input
/// (<see cref="Input"/>). Cmdlets build it from their parameters; <see cref="RequestRules"/> holds the rules.
/// </summary>
public sealed record GenerationRequest
{
    public required string Prompt { get; init; }
    public string NegativePrompt { get; init; } = "";

    /// <summary>How both prompts are read: AUTOMATIC1111's syntax (weights, BREAK, any length) or
    /// literal text.</summary>
    public Text.PromptSyntax PromptSyntax { get; init; } = Text.PromptSyntax.Automatic1111;

    /// <summary>Folders (searched with their subfolders) or files of textual-inversion embeddings, searched before the
    /// folders SD_EMBEDDINGS lists; a prompt uses one by its file name (Automatic1111 syntax).</summary>
    public IReadOnlyList<string>? EmbeddingPaths { get; init; }

    /// <summary>A replay: the embeddings the record says were used (name → short hash); one not found
    /// is an error.</summary>
    public IReadOnlyDictionary<string, string>? ExpectedEmbeddings { get; init; }
    public int Steps { get; init; } = 50;
    public double GuidanceScale { get; init; } = 7.5;
    public long Seed { get; init; }

    /// <summary>Null: the model's default size (UNet sample_size × VAE factor), or the input image's size.</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    /// <summary>Images per call, drawn as diffusers' <c>num_images_per_prompt</c> (one noise tensor for
    /// the batch).</summary>
    public int Count { get; init; } = 1;

    /// <summary>A scheduler name (diffusers class or AUTOMATIC1111 name); null uses the model's own.</summary>
    public string? Scheduler { get; init; }

    /// <summary>DDIM-style eta, for schedulers that take it.</summary>
    public double? Eta { get; init; }

    /// <summary>Karras sigmas, for schedulers that support them.</summary>
    public bool? KarrasSigmas { get; init; }

    /// <summary>What the task starts from: <see cref="TextToImageInput"/> (the default),
    /// <see cref="ImageToImageInput"/>,
    /// <see cref="InpaintInput"/>, <see cref="DepthToImageInput"/> or <see cref="UpscaleInput"/>.</summary>
    public TaskInput Input { get; init; } = new TextToImageInput();

    /// <summary>
    /// UNet tiling, in latent pixels. Null: the task's default (the x4 upscaler tiles at
    /// <see cref="UpscaleTask.DefaultTileSize"/>, the others never); 0: never tile; N: tiles of N×N whenever the latent
    /// exceeds N. The UNet runs per step on overlapping latent tiles whose noise predictions are blended with linear
    /// ramps over the overlap; the VAE decodes overlapping latent tiles the same way.
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

    /// <summary>LoRAs merged into the model for this call only (<see cref="Lora.AppliedLoras"/>);
    /// they add up.</summary>
    public IReadOnlyList<Lora.LoraRequest> Loras { get; init; } = [];

    /// <summary>Replaces the seeded CPU generator: tests inject the noise a reference run stored.</summary>
    public INoiseSource? NoiseOverride { get; init; }
}
