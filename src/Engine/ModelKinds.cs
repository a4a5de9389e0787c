namespace PSStableDiffusion.Engine;

/// <summary>What a <see cref="ModelKind"/> implies: its UNet channels, its pipelines and the name users see.</summary>
public static class ModelKinds
{
    public static ModelKind FromUnetInChannels(int inChannels, string source) => inChannels switch
    {
        4 => ModelKind.TextToImage,
        5 => ModelKind.Depth,
        7 => ModelKind.Upscale,
        9 => ModelKind.Inpaint,
        _ => throw new NotSupportedException(
            $"'{source}': a UNet with in_channels = {inChannels} is not a " +
            $"Stable Diffusion 2.x variant this module knows (4, 5, 7 or 9)."),
    };

    /// <summary>The name users see (and Get-SDModel prints).</summary>
    public static string DisplayName(this ModelKind variant) => variant switch
    {
        ModelKind.TextToImage => "txt2img",
        ModelKind.Depth => "depth2img",
        ModelKind.Upscale => "x4-upscaler",
        ModelKind.Inpaint => "inpainting",
        _ => variant.ToString(),
    };

    /// <summary>The UNet in_channels that identifies the variant.</summary>
    public static int UnetInChannels(this ModelKind variant) => variant switch
    {
        ModelKind.Depth => 5,
        ModelKind.Upscale => 7,
        ModelKind.Inpaint => 9,
        _ => 4,
    };

    /// <summary>The pipelines a model of this variant runs (legacy 4-channel inpainting is not offered).</summary>
    public static IReadOnlyList<PipelineKind> SupportedPipelines(this ModelKind variant) => variant switch
    {
        ModelKind.TextToImage => [PipelineKind.Txt2Img, PipelineKind.Img2Img],
        ModelKind.Depth => [PipelineKind.Depth2Img],
        ModelKind.Upscale => [PipelineKind.Upscale],
        ModelKind.Inpaint => [PipelineKind.Inpaint],
        _ => [],
    };

    /// <summary>The pipeline a model runs when nothing else is said.</summary>
    public static PipelineKind DefaultPipeline(this ModelKind variant) => variant switch
    {
        ModelKind.Depth => PipelineKind.Depth2Img,
        ModelKind.Upscale => PipelineKind.Upscale,
        ModelKind.Inpaint => PipelineKind.Inpaint,
        _ => PipelineKind.Txt2Img,
    };
}
