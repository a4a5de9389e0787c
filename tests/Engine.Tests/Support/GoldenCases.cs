using Xunit;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>The pipeline case folders of tests/golden (see tests/golden/README.md), in one place.</summary>
internal static class GoldenCases
{
    /// <summary>Every pipeline case.</summary>
    public static readonly string[] Pipeline = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"];

    /// <summary>The cases whose call takes an input image.</summary>
    public static readonly string[] ImageInput = ["img2img", "inpaint", "depth2img", "upscale_x4"];

    /// <summary><see cref="Pipeline"/> as theory data.</summary>
    public static TheoryData<string> PipelineCases => new(Pipeline);

    /// <summary><see cref="ImageInput"/> as theory data.</summary>
    public static TheoryData<string> ImageInputCases => new(ImageInput);
}
