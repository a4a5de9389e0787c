using PSStableDiffusion.Engine.Imaging;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>
/// What one task adds to the shared core (<see cref="StableDiffusionPipeline"/>), as diffusers' one-pipeline-per-task
/// files do: its own checks, its input image and conditioning, its initial latents, the extra UNet input channels and
/// what happens after the decode. The core calls the hooks in this order: <see cref="Check"/>, <see cref="Prepare"/>,
/// <see cref="PrepareLatents"/>, then <see cref="ConcatConditioning"/> per step and <see cref="Finish"/>.
/// </summary>
internal abstract class PipelineTask
{
    public abstract PipelineKind Kind { get; }

    /// <summary>The input as the task runs it (recorded with the image).</summary>
    public abstract TaskInput Input { get; }

    /// <summary>diffusers' strength for tasks that start from a noised image; null runs the whole schedule.</summary>
    public virtual double? Strength => null;

    /// <summary>UNet tile size when the request names none; null: do not tile.</summary>
    public virtual int? DefaultTileSize => null;

    /// <summary>Extra class labels for the UNet ([2N]), the upscaler's noise level; set in
    /// <see cref="PrepareLatents"/>.</summary>
    public virtual Tensor? ClassLabels => null;

    /// <summary>Checks the task's own inputs before any work (the shared settings are checked by
    /// <see cref="RequestRules"/>): here, that an image input is a readable image, once for every task
    /// that has one.</summary>
    public virtual void Check(StableDiffusionModel model)
    {
        if (Input is ImageTaskInput image) ImageConditioning.NormalizeImage(image.Image).Dispose();
    }

    /// <summary>The input image and the conditioning that needs no noise; sets the run's output and
    /// latent sizes.</summary>
    public abstract void Prepare(PipelineRun run);

    /// <summary>The latents the loop starts from, drawing noise in diffusers' order for this task.</summary>
    public abstract Tensor PrepareLatents(PipelineRun run);

    /// <summary>The UNet input for one step: the scaled latents ([B, 4, h, w]) with the task's
    /// channels appended.</summary>
    public virtual Tensor ConcatConditioning(Tensor scaledLatents) => scaledLatents;

    /// <summary>After the decode ([N, 3, H, W] float32 on the CPU).</summary>
    public virtual Tensor Finish(Tensor decoded, PipelineRun run) => decoded;

    /// <summary>
    /// The task for <paramref name="request"/> on <paramref name="model"/>: the input's own, except that an image on a
    /// depth model is depth-to-image. A model that does not serve it is a <see cref="PipelineMismatchException"/>.
    /// </summary>
    public static PipelineTask For(StableDiffusionModel model, GenerationRequest request)
    {
        var input = request.Input;
        if (input is ImageToImageInput image && model.Kind == ModelKind.Depth)
            input = new DepthToImageInput
            {
                Image = image.Image, Strength = image.Strength, SourceImageHash = image.SourceImageHash
            };
        if (!model.Kind.SupportedPipelines().Contains(input.Kind))
            throw new PipelineMismatchException(
                model.Kind, input.Kind, model.Source, MismatchDetail(model.Kind, input.Kind));
        return input switch
        {
            TextToImageInput => new TextToImageTask(),
            ImageToImageInput i => new ImageToImageTask(i),
            InpaintInput i => new InpaintTask(i),
            DepthToImageInput i => new DepthToImageTask(i),
            UpscaleInput i => new UpscaleTask(i),
            _ => throw new ArgumentException($"Unknown task input {input.GetType().Name}.", nameof(request)),
        };
    }

    private static string MismatchDetail(ModelKind model, PipelineKind asked) => asked switch
    {
        PipelineKind.Inpaint when model == ModelKind.TextToImage =>
            "inpainting needs an inpainting model (9-channel UNet: latents, mask and masked-image latents).",
        PipelineKind.Inpaint => "inpainting needs an inpainting model (9-channel UNet).",
        PipelineKind.Depth2Img => "depth-to-image needs a depth model (5-channel UNet: latents and depth).",
        PipelineKind.Upscale => "upscaling needs the x4 upscaler (7-channel UNet with noise-level class labels).",
        _ when model == ModelKind.Upscale => "the x4 upscaler only upscales an image.",
        _ when model == ModelKind.Inpaint => "an inpainting model needs an image and a mask.",
        _ when model == ModelKind.Depth => "a depth model needs an image and a depth map.",
        _ => "this model does not serve it.",
    };

    /// <summary>
    /// The input image at the size the pipeline runs: the requested size (for the upscaler, the output size ÷ 4) or the
    /// image's own, rounded down to a multiple of the VAE factor; resized (Lanczos, bicubic for the upscaler, as
    /// diffusers' image processors) when that differs from the image. Returns [1, 3, h, w] float32 on the device.
    /// </summary>
    protected static Tensor PrepareImage(PipelineRun run, Tensor source, int outputPerInput, ResizeFilter filter)
    {
        var image = ImageConditioning.NormalizeImage(source);
        int imageHeight = (int)image.shape[2], imageWidth = (int)image.shape[3];
        int factor = run.Model.VaeScaleFactor;
        int wantedWidth = run.Request.Width is int w ? w / outputPerInput : imageWidth;
        int wantedHeight = run.Request.Height is int h ? h / outputPerInput : imageHeight;
        int width = wantedWidth - wantedWidth % factor, height = wantedHeight - wantedHeight % factor;
        if (width < factor || height < factor)
            throw new ArgumentOutOfRangeException("Width", $"{wantedWidth}x{wantedHeight}",
                $"The input size {wantedWidth}x{wantedHeight} is smaller than the VAE factor {factor}.");
        if (width != wantedWidth || height != wantedHeight)
            run.Observer.Log?.Invoke(
                $"{wantedWidth}x{wantedHeight} is not a multiple of {factor}; using {width}x{height}.");
        if (width != imageWidth || height != imageHeight)
        {
            run.Observer.Log?.Invoke(
                $"Resized the {imageWidth}x{imageHeight} input image to {width}x{height} ({filter}).");
            image = ImageConditioning.ResizeImage(image, width, height, filter);
        }
        image = image.to(run.Device);
        run.Inspect("image_preprocess0_output", image);
        return image;
    }

    /// <summary>Output and latent sizes of an image task that keeps the image's size (all but the upscaler).</summary>
    protected static void SetSizesFromImage(PipelineRun run, Tensor image)
    {
        (run.Width, run.Height) = ((int)image.shape[3], (int)image.shape[2]);
        (run.LatentWidth, run.LatentHeight) =
            (run.Width / run.Model.VaeScaleFactor, run.Height / run.Model.VaeScaleFactor);
    }
}
