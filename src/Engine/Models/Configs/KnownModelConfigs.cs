using System.Reflection;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;

namespace PSStableDiffusion.Engine.Models.Configs;

/// <summary>
/// Full-size diffusers configs embedded from <c>Models/Configs/*.json</c>: for the benchmark (random weights of the
/// real size), for single-file checkpoint loading (which carries no config), and for architecture tests.
/// </summary>
public static class KnownModelConfigs
{
    private const string ResourcePrefix = "PSStableDiffusion.Engine.Models.Configs.";

    /// <summary>The UNet config of <paramref name="model"/>.</summary>
    public static UNet2DConditionConfig UNet(KnownModel model) =>
        UNet2DConditionConfig.FromJson(ReadJson(UNetFile(model)), UNetFile(model));

    /// <summary>The VAE config of <paramref name="model"/>.</summary>
    public static AutoencoderKLConfig Vae(KnownModel model) =>
        AutoencoderKLConfig.FromJson(ReadJson(VaeFile(model)), VaeFile(model));

    /// <summary>The embedded JSON text of one config file (e.g. <c>sd21-768-v.unet.json</c>).</summary>
    /// <exception cref="FileNotFoundException">No embedded config has that name.</exception>
    public static string ReadJson(string fileName)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourcePrefix + fileName)
            ?? throw new FileNotFoundException($"No embedded model config named '{fileName}'.", fileName);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static string UNetFile(KnownModel model) => model switch
    {
        KnownModel.Sd21_768V => "sd21-768-v.unet.json",
        KnownModel.Sd21_512Base => "sd21-512-base.unet.json",
        KnownModel.Sd2Inpainting => "sd2-inpainting.unet.json",
        KnownModel.Sd2Depth => "sd2-depth.unet.json",
        KnownModel.X4Upscaler => "x4-upscaler.unet.json",
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, "unknown model"),
    };

    // The 512-pixel family members share one VAE; only sample_size differs from the 768 one.
    private static string VaeFile(KnownModel model) => model switch
    {
        KnownModel.Sd21_768V => "sd21-768-v.vae.json",
        KnownModel.Sd21_512Base or KnownModel.Sd2Inpainting or KnownModel.Sd2Depth => "sd2-512.vae.json",
        KnownModel.X4Upscaler => "x4-upscaler.vae.json",
        _ => throw new ArgumentOutOfRangeException(nameof(model), model, "unknown model"),
    };
}
