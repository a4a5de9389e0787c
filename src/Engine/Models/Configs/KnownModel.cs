using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;

namespace PSStableDiffusion.Engine.Models.Configs;

/// <summary>The SD 2.x family members whose full-size architecture ships with the engine.</summary>
public enum KnownModel
{
    /// <summary>stable-diffusion-2-1 (768x768, v-prediction, upcast attention).</summary>
    Sd21_768V,
    /// <summary>stable-diffusion-2-1-base (512x512, epsilon).</summary>
    Sd21_512Base,
    /// <summary>stable-diffusion-2-inpainting (9 input channels).</summary>
    Sd2Inpainting,
    /// <summary>stable-diffusion-2-depth (5 input channels).</summary>
    Sd2Depth,
    /// <summary>stable-diffusion-x4-upscaler (7 input channels, noise level as class label, f=4 VAE).</summary>
    X4Upscaler,
}
