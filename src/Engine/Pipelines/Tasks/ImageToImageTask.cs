using PSStableDiffusion.Engine.Imaging;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Image-to-image: the encoded image, noised at the first timestep of the strength-cut schedule.</summary>
internal sealed class ImageToImageTask : PipelineTask
{
    private readonly ImageToImageInput _input;
    private Tensor? _image;

    public ImageToImageTask(ImageToImageInput input) => _input = input;

    public override PipelineKind Kind => PipelineKind.Img2Img;
    public override TaskInput Input => _input;
    public override double? Strength => _input.Strength;

    public override void Prepare(PipelineRun run)
    {
        // [1, 3, H, W]
        _image = PrepareImage(run, _input.Image, outputPerInput: 1, ResizeFilter.Lanczos);
        SetSizesFromImage(run, _image);
    }

    // prepare_latents: sample the posterior (one draw for the one image), scale, repeat for the batch, then noise of
    // the batch shape added at the first timestep of the cut schedule.
    // [N, 4, h, w]
    public override Tensor PrepareLatents(PipelineRun run) => run.NoisedImageLatents(_image!);
}
