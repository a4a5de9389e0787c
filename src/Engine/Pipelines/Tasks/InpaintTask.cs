using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>
/// Inpainting with a 9-channel UNet: latents, the mask at latent size and the masked image's latents; afterwards the
/// unmasked pixels of the original are composited back (unless <see cref="InpaintInput.Composite"/> is off).
/// </summary>
internal sealed class InpaintTask : PipelineTask
{
    private readonly InpaintInput _input;
    // [1, 3, H, W]
    private Tensor? _image;
    // [1, 1, H, W] binarised
    private Tensor? _repaintMask;
    // [1, 3, H, W]
    private Tensor? _maskedImage;
    // [2N, 1, h, w]
    private Tensor? _maskLatents;
    // [2N, 4, h, w]
    private Tensor? _maskedImageLatents;

    public InpaintTask(InpaintInput input) => _input = input;

    public override PipelineKind Kind => PipelineKind.Inpaint;
    public override TaskInput Input => _input;
    public override double? Strength => _input.Strength;

    public override void Check(StableDiffusionModel model)
    {
        base.Check(model);
        ImageConditioning.NormalizeMask(_input.Mask).Dispose();
    }

    /// <summary>The image, and the mask / masked image that need no noise (diffusers prepares them before
    /// the latents).</summary>
    public override void Prepare(PipelineRun run)
    {
        _image = PrepareImage(run, _input.Image, outputPerInput: 1, ResizeFilter.Lanczos);
        SetSizesFromImage(run, _image);
        _repaintMask = ImageConditioning.Binarize(PrepareMask(run)).to(run.Device);
        run.Inspect("mask_preprocessed", _repaintMask);
        _maskedImage = _image * _repaintMask.ScalarSafe().Less(0.5).to(ScalarType.Float32);
        run.Inspect("masked_image", _maskedImage);
    }

    /// <summary>
    /// prepare_latents: strength 1 starts from pure noise × init_noise_sigma (the image is not encoded); below 1, the
    /// image latents (drawn first) are noised at the first timestep. Then prepare_mask_latents: the mask at latent size
    /// (nearest) and the masked image encoded (a posterior draw).
    /// </summary>
    public override Tensor PrepareLatents(PipelineRun run)
    {
        // [N, 4, h, w]
        var latents = _input.Strength >= 1.0 ? run.PureNoiseLatents() : run.NoisedImageLatents(_image!);
        var smallMask = nn.functional.interpolate(_repaintMask!, size: new long[] { run.LatentHeight, run.LatentWidth },
            // [1, 1, h, w]
            mode: InterpolationMode.Nearest);
        // [1, 4, h, w]
        var maskedLatents = run.EncodeImage(_maskedImage!);
        // [2N, 1, h, w]
        _maskLatents = smallMask.repeat(run.Batch, 1, 1, 1);
        // [2N, 4, h, w]
        _maskedImageLatents = maskedLatents.repeat(run.Batch, 1, 1, 1);
        run.Inspect("mask_latents", _maskLatents);
        run.Inspect("masked_image_latents", _maskedImageLatents);
        return latents;
    }

    public override Tensor ConcatConditioning(Tensor scaledLatents) =>
        // [2N, 9, h, w]
        torch.cat(new[] { scaledLatents, _maskLatents!, _maskedImageLatents! }, 1);

    /// <summary>Keeps the original pixels outside the mask (the VAE round trip shifts colours there).</summary>
    public override Tensor Finish(Tensor decoded, PipelineRun run)
    {
        if (!_input.Composite) return decoded;
        // [1, 1, H, W]
        var keep = _repaintMask!.cpu();
        run.Observer.Log?.Invoke("Composited the unmasked pixels of the original image over the result.");
        // [N, 3, H, W]
        return decoded * keep + _image!.cpu() * (1 - keep.ScalarSafe());
    }

    /// <summary>
    /// The mask at the size the pipeline runs ([1, 1, H, W], not yet binarised). A mask of another size than the image
    /// is resized with a warning; one that only follows the image's rounding to the VAE factor, silently.
    /// </summary>
    private Tensor PrepareMask(PipelineRun run)
    {
        var mask = ImageConditioning.NormalizeMask(_input.Mask).to(run.Device);
        int maskHeight = (int)mask.shape[2], maskWidth = (int)mask.shape[3];
        if (maskWidth == run.Width && maskHeight == run.Height) return mask;
        var source = _input.Image;
        if (maskWidth != source.shape[^1] || maskHeight != source.shape[^2])
            run.Observer.Warn?.Invoke(
                $"The {maskWidth}x{maskHeight} mask does not match the {source.shape[^1]}x{source.shape[^2]} " +
                $"image; it was resized to {run.Width}x{run.Height} (Lanczos, then binarised at 0.5).");
        return ImageConditioning.ResizeMask(mask, run.Width, run.Height);
    }
}
