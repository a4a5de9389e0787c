namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// Which pipelines a model serves, told by its UNet's <c>in_channels</c> (and class embeddings for the upscaler):
/// 4 = text/image-to-image, 5 = depth-to-image, 7 = x4 upscaler, 9 = inpainting.
/// </summary>
public enum ModelVariant { TextToImage, Depth, Upscale, Inpaint }

public static class ModelVariants
{
    public static ModelVariant FromUnetInChannels(int inChannels, string source) => inChannels switch
    {
        4 => ModelVariant.TextToImage,
        5 => ModelVariant.Depth,
        7 => ModelVariant.Upscale,
        9 => ModelVariant.Inpaint,
        _ => throw new NotSupportedException(
            $"'{source}': a UNet with in_channels = {inChannels} is not a Stable Diffusion 2.x variant this module knows (4, 5, 7 or 9)."),
    };

    /// <summary>The name users see (and Get-SDModel prints).</summary>
    public static string DisplayName(this ModelVariant variant) => variant switch
    {
        ModelVariant.TextToImage => "txt2img",
        ModelVariant.Depth => "depth2img",
        ModelVariant.Upscale => "x4-upscaler",
        ModelVariant.Inpaint => "inpainting",
        _ => variant.ToString(),
    };

    /// <summary>The UNet in_channels that identifies the variant.</summary>
    public static int UnetInChannels(this ModelVariant variant) => variant switch
    {
        ModelVariant.Depth => 5,
        ModelVariant.Upscale => 7,
        ModelVariant.Inpaint => 9,
        _ => 4,
    };

    /// <summary>The pipelines a model of this variant runs (legacy 4-channel inpainting is not offered).</summary>
    public static IReadOnlyList<PipelineKind> SupportedPipelines(this ModelVariant variant) => variant switch
    {
        ModelVariant.TextToImage => [PipelineKind.Txt2Img, PipelineKind.Img2Img],
        ModelVariant.Depth => [PipelineKind.Depth2Img],
        ModelVariant.Upscale => [PipelineKind.Upscale],
        ModelVariant.Inpaint => [PipelineKind.Inpaint],
        _ => [],
    };

    /// <summary>The pipeline a model runs when nothing else is said.</summary>
    public static PipelineKind DefaultPipeline(this ModelVariant variant) => variant switch
    {
        ModelVariant.Depth => PipelineKind.Depth2Img,
        ModelVariant.Upscale => PipelineKind.Upscale,
        ModelVariant.Inpaint => PipelineKind.Inpaint,
        _ => PipelineKind.Txt2Img,
    };
}
