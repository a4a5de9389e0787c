using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Upscales images four times with the Stable Diffusion x4 upscaler, guided by a prompt (by default the image's own).
/// Large inputs are processed in overlapping tiles so that a 512×512 → 2048×2048 upscale fits in memory on a CPU.
/// </summary>
[Cmdlet(VerbsCommon.Resize, "SDUpscale")]
[OutputType(typeof(SDImage))]
public sealed class ResizeSDUpscaleCommand : ImageToImageCmdletBase
{
    #region Members

    /// <summary>diffusers' defaults for the upscaler: 75 steps, guidance 9.</summary>
    public ResizeSDUpscaleCommand()
    {
        Steps = 75;
        GuidanceScale = 9.0;
    }

    #endregion

    #region Parameters

    /// <summary>The low-resolution image: an SDImage, a path or a FileInfo.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [SDImageTransformation]
    [ValidateNotNull]
    public SDImage? Image { get; set; }

    /// <summary>What the image shows; by default the piped image's own prompt.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string Prompt { get; set; } = "";

    /// <summary>Noise added to the low-res image before upscaling (the model's class label), 0..350; more noise, more
    /// invention.</summary>
    [Parameter]
    [ValidateRange(0, 350)]
    public int NoiseLevel { get; set; } = 20;

    /// <summary>Tile size in latent pixels (= input pixels) for the UNet and the decoder; 0 never tiles. Default: 128,
    /// so small inputs are not tiled.</summary>
    [Parameter]
    [ValidateRange(0, 4096)]
    public int? TileSize { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var image = Image!;
        var request = new GenerationRequest
        {
            Prompt = Prompt ?? "",
            NegativePrompt = NegativePrompt ?? "",
            PromptSyntax = PromptSyntax,
            EmbeddingPaths = EmbeddingPaths,
            Steps = Steps,
            GuidanceScale = GuidanceScale,
            Seed = ResolveSeed(Seed),
            Scheduler = Scheduler,
            Input = new UpscaleInput
            {
                Image = image.ToTensor(), SourceImageHash = image.ComputeContentHash(), NoiseLevel = NoiseLevel
            },
            TileSize = TileSize,
        };
        CheckRequest(request);
        GenerateAndWrite(
            request, $"Resize-SDUpscale: {image.Width}x{image.Height} → {image.Width * 4}x{image.Height * 4}");
    }

    #endregion
}
