using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Inpainting with a 9-channel model (diffusers' StableDiffusionInpaintPipeline).</summary>
public sealed record InpaintInput : ImageTaskInput
{
    public override PipelineKind Kind => PipelineKind.Inpaint;

    /// <summary>
    /// [1, 1, H, W] (or [1, H, W]) in [0, 1], 1 where to repaint (binarised at 0.5). A mask whose size differs from the
    /// image's is resized to it (Lanczos, then binarised) with a warning.
    /// </summary>
    public required Tensor Mask { get; init; }

    /// <summary>In (0, 1]; 1 (diffusers' default) starts from pure noise inside the mask.</summary>
    public double Strength { get; init; } = 1.0;

    /// <summary>
    /// Paste the unmasked pixels of the image back over the decoded image (pixel space, binarised mask at full
    /// resolution), so the VAE round trip cannot shift colours outside the mask. diffusers does not do this; set false
    /// for its exact output.
    /// </summary>
    public bool Composite { get; init; } = true;

    /// <summary>Recorded in the generation record; null computes it from <see cref="Mask"/> as an 8-bit gray image
    /// (equal to <see cref="Imaging.GrayImage.ComputeContentHash"/> of the 8-bit mask the tensor came from).</summary>
    public string? MaskHash { get; init; }
}
