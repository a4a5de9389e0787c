namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>The three networks of a Stable Diffusion checkpoint.</summary>
public enum SingleFileComponent
{
    /// <summary><c>model.diffusion_model.*</c> → diffusers <c>unet/</c>.</summary>
    UNet,
    /// <summary><c>first_stage_model.*</c> → diffusers <c>vae/</c>.</summary>
    Vae,
    /// <summary><c>cond_stage_model.model.*</c> (OpenCLIP) → transformers <c>text_encoder/</c>.</summary>
    TextEncoder,
}
