using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Repaints the white part of a mask with an inpainting model (9-channel UNet, the sd-2-inpainting layout). Takes
/// SDImages or image files from the pipeline. Pixels outside the mask are copied back from the original afterwards
/// (-NoComposite keeps the model's output everywhere).
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "SDInpaint", DefaultParameterSetName = ImageSet)]
[OutputType(typeof(SDImage))]
public sealed class InvokeSDInpaintCommand : ImageToImageCmdletBase
{
    #region Members

    private const string ImageSet = "Image";
    private const string LiteralPathSet = "LiteralPath";

    #endregion

    #region Parameters

    /// <summary>The image to repaint: an SDImage, a path or a FileInfo.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = ImageSet)]
    [SDImageTransformation]
    [ValidateNotNull]
    public SDImage? Image { get; set; }

    /// <summary>Image files to repaint, taken literally; binds FileInfo objects from Get-ChildItem.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    /// <summary>The mask: white where to repaint, black where to keep (binarised at 0.5). An SDImage, a path or
    /// a FileInfo.</summary>
    [Parameter(Mandatory = true)]
    [SDImageTransformation]
    [ValidateNotNull]
    public SDImage? Mask { get; set; }

    /// <summary>Repaint the black part of the mask instead.</summary>
    [Parameter]
    public SwitchParameter InvertMask { get; set; }

    /// <summary>Keep the model's output outside the mask too, instead of the original pixels.</summary>
    [Parameter]
    public SwitchParameter NoComposite { get; set; }

    /// <summary>What to paint into the masked area.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Prompt { get; set; } = "";

    /// <summary>How far to move from the original inside the mask, in (0, 1]; 1 (default) starts from pure
    /// noise there.</summary>
    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public double Strength { get; set; } = 1.0;

    /// <summary>Decode in 512×512 tiles (diffusers' enable_vae_tiling): bounds the decoder's memory for
    /// large images.</summary>
    [Parameter]
    public SwitchParameter TiledDecode { get; set; }

    /// <summary>Images per input image.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int Count { get; set; } = 1;

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        // One mask for every input image of this record: converted and hashed once.
        var given = Mask!.ToGray();
        var maskHash = given.ComputeContentHash() + (InvertMask ? "-inverted" : "");
        var mask = InvertMask ? given.Inverted() : given;
        foreach (var image in Inputs())
        {
            var request = new GenerationRequest
            {
                Prompt = Prompt,
                NegativePrompt = NegativePrompt ?? "",
                PromptSyntax = PromptSyntax,
                EmbeddingPaths = EmbeddingPaths,
                Steps = Steps,
                GuidanceScale = GuidanceScale,
                Seed = ResolveSeed(Seed),
                Count = Count,
                Scheduler = Scheduler,
                Input = new InpaintInput
                {
                    Image = image.ToTensor(),
                    SourceImageHash = image.ComputeContentHash(),
                    Mask = mask.ToTensor(normalize: true),
                    MaskHash = maskHash,
                    Strength = Strength,
                    Composite = !NoComposite,
                },
                DecoderTileSize = TiledDecode ? StableDiffusionPipeline.DefaultDecoderTileSize : null,
            };
            CheckRequest(request);
            GenerateAndWrite(request, $"Invoke-SDInpaint: {Truncate(Prompt, 60)}");
        }
    }

    #endregion

    #region Private methods

    private IEnumerable<SDImage> Inputs()
    {
        if (ParameterSetName == ImageSet)
        {
            yield return Image!;
            yield break;
        }
        foreach (var path in LiteralPath)
        {
            var resolved = ResolvePath(path);
            SDImage? image = null;
            try
            {
                image = ImageCodec.Read(resolved);
            }
            catch (Exception e) when (e is ImageFormatException or IOException or UnauthorizedAccessException)
            {
                WriteError(ToErrorRecord(e, "InvalidImage", resolved));
            }
            if (image is not null) yield return image;
        }
    }

    #endregion
}
