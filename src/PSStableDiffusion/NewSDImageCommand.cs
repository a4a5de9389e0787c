using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Generates images from a text prompt (text-to-image), or from a prompt and a starting image (-InitImage:
/// image-to-image, or depth-to-image with -DepthMap on a depth model). Each prompt from the pipeline gives
/// <see cref="Count"/> images.
/// Piping an SDImage in replays its prompt, negative prompt, seed, steps, guidance, scheduler and size.
/// </summary>
[Cmdlet(VerbsCommon.New, "SDImage", DefaultParameterSetName = TextToImageSet)]
[OutputType(typeof(SDImage))]
public sealed class NewSDImageCommand : GenerationCmdletBase
{
    #region Members

    private const string TextToImageSet = "TextToImage";
    private const string ImageToImageSet = "ImageToImage";

    #endregion

    #region Parameters

    /// <summary>What to draw.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Prompt { get; set; } = "";

    /// <summary>What to steer away from (the unconditional half of classifier-free guidance).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string NegativePrompt { get; set; } = "";

    /// <summary>Denoising steps (diffusers' num_inference_steps); with -InitImage, Strength × Steps
    /// of them run.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1000)]
    public int Steps { get; set; } = 50;

    /// <summary>Classifier-free guidance scale; 1 or less skips the unconditional pass.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0.0, 100.0)]
    public double GuidanceScale { get; set; } = 7.5;

    /// <summary>Seed of the CPU generator: the same seed gives the same image as diffusers with
    /// torch.Generator('cpu').manual_seed(seed). Random when omitted, and recorded.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0L, long.MaxValue)]
    public long? Seed { get; set; }

    /// <summary>Output width in pixels, a multiple of 8; the model's default size (or the init image's)
    /// when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(8, 4096)]
    public int? Width { get; set; }

    /// <summary>Output height in pixels, a multiple of 8; the model's default size (or the init image's)
    /// when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(8, 4096)]
    public int? Height { get; set; }

    /// <summary>A diffusers scheduler class name or an AUTOMATIC1111 sampler name; the model's own
    /// when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SchedulerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Scheduler { get; set; }

    /// <summary>DDIM's eta: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. Only for schedulers
    /// that take it.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0.0, 1.0)]
    public double? Eta { get; set; }

    /// <summary>Use Karras sigmas (use_karras_sigmas) on schedulers that support them; -KarrasSigmas:$false
    /// forces them off.</summary>
    [Parameter]
    public SwitchParameter KarrasSigmas { get; set; }

    /// <summary>Decode in 512×512 tiles (diffusers' enable_vae_tiling): bounds the decoder's memory for
    /// large images.</summary>
    [Parameter]
    public SwitchParameter TiledDecode { get; set; }

    /// <summary>Images per prompt, drawn as diffusers' num_images_per_prompt.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int Count { get; set; } = 1;

    /// <summary>Replay: the index of the piped image in its batch; only that image is generated again (hidden, bound
    /// from SDImage).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    [ValidateRange(0, 63)]
    public int? ImageIndex { get; set; }

    /// <summary>Replay: the size of the piped image's batch, whose noise is drawn together (hidden, bound
    /// from SDImage).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    [ValidateRange(1, 64)]
    public int? BatchSize { get; set; }

    /// <summary>Replay: the piped image's whole record, for the options it has no property of its own for (eta, Karras
    /// sigmas, tiled decode).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true, DontShow = true)]
    public GenerationRecord? Record { get; set; }

    /// <summary>Image-to-image: the image to start from (an SDImage, a path or a FileInfo).</summary>
    [Parameter(Mandatory = true, ParameterSetName = ImageToImageSet)]
    [SDImageTransformation]
    [ValidateNotNull]
    public SDImage? InitImage { get; set; }

    /// <summary>Image-to-image: how far to move from the init image, in (0, 1]; 1 ignores it entirely.</summary>
    [Parameter(ParameterSetName = ImageToImageSet)]
    [ValidateRange(0.0, 1.0)]
    public double Strength { get; set; } = 0.8;

    /// <summary>Depth-to-image (a depth model): the depth map, any scale (16-bit PNGs keep their precision), an
    /// SDImage, a path or a FileInfo.</summary>
    [Parameter(ParameterSetName = ImageToImageSet)]
    [ValidateNotNull]
    public object? DepthMap { get; set; }

    #endregion

    #region Overrides

    protected override GenerationRecord? ReplayedRecord => Record;

    protected override void ProcessRecord()
    {
        var request = new GenerationRequest
        {
            Prompt = Prompt,
            NegativePrompt = NegativePrompt ?? "",
            PromptSyntax = PromptSyntaxFor(Record),
            EmbeddingPaths = EmbeddingPaths,
            ExpectedEmbeddings = Record?.Embeddings,
            Steps = Steps,
            GuidanceScale = GuidanceScale,
            Seed = ResolveSeed(Seed),
            Width = Width,
            Height = Height,
            Count = Count,
            Scheduler = Scheduler,
            // A replay takes eta and Karras sigmas from the piped record unless the command line gives them.
            Eta = Eta ?? Record?.Eta,
            KarrasSigmas = MyInvocation.BoundParameters.ContainsKey(nameof(KarrasSigmas))
                ? KarrasSigmas.IsPresent
                : Record?.KarrasSigmas,
            DecoderTileSize = MyInvocation.BoundParameters.ContainsKey(nameof(TiledDecode))
                ? (TiledDecode.IsPresent ? StableDiffusionPipeline.DefaultDecoderTileSize : null)
                : Record?.DecoderTileSize,
        };
        if (ParameterSetName == ImageToImageSet) request = request with { Input = ImageInput() };
        CheckRequest(request);
        int? onlyIndex = null;
        if (ImageIndex is { } index && (index > 0 || BatchSize > 1))
        {
            // A replay of one image of a batch: the batch's noise is one draw, so draw the whole batch again.
            request = request with { Count = Math.Max(BatchSize ?? index + 1, index + 1) };
            onlyIndex = index;
        }
        ReplayedLoras = Record?.Loras;
        GenerateAndWrite(request, $"New-SDImage: {Truncate(Prompt, 60)}", onlyIndex);
    }

    #endregion

    #region Private methods

    /// <summary>Image-to-image from -InitImage, or depth-to-image when -DepthMap is given (an init image alone on a
    /// depth model is depth-to-image too: the engine decides).</summary>
    private TaskInput ImageInput()
    {
        var image = InitImage!.ToTensor();
        var hash = InitImage.ComputeContentHash();
        if (DepthMap is null)
            return new ImageToImageInput { Image = image, SourceImageHash = hash, Strength = Strength };
        GrayImage depth;
        try
        {
            depth = DepthInput.Read(DepthMap, SessionState);
        }
        catch (Exception e) when (e is ImageFormatException or IOException or ArgumentException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "InvalidDepthMap", DepthMap));
            throw;
        }
        return new DepthToImageInput
        {
            Image = image, SourceImageHash = hash, Strength = Strength, DepthMap = depth.ToTensor()
        };
    }

    #endregion
}
