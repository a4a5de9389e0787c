using TorchSharp;
using PSStableDiffusion.Engine.Imaging;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Depth-to-image: image-to-image latents, with the normalised depth map as the UNet's fifth channel.</summary>
internal sealed class DepthToImageTask : PipelineTask
{
    private readonly DepthToImageInput _input;
    private Tensor? _image;
    private Tensor? _depthCondition;                                                                       // [2N, 1, h, w]

    public DepthToImageTask(DepthToImageInput input) => _input = input;

    public override PipelineKind Kind => PipelineKind.Depth2Img;
    public override TaskInput Input => _input;
    public override double? Strength => _input.Strength;

    public override void Check(StableDiffusionModel model)
    {
        base.Check(model);
        if (_input.DepthMap is null)
            throw new PipelineMismatchException(model.Kind, Kind, model.Source,
                "depth-to-image needs a depth map (DepthMap); estimating one from the image is not available yet.");
        ImageConditioning.NormalizeDepth(_input.DepthMap).Dispose();
    }

    public override void Prepare(PipelineRun run)
    {
        _image = PrepareImage(run, _input.Image, outputPerInput: 1, ResizeFilter.Lanczos);                  // [1, 3, H, W]
        SetSizesFromImage(run, _image);
        var depth = ImageConditioning.NormalizeDepth(_input.DepthMap!);                                     // [1, Hd, Wd]
        run.Inspect("input_depth_map", depth);
        if (depth.shape[1] != run.Height || depth.shape[2] != run.Width)
            run.Observer.Log?.Invoke($"The {depth.shape[2]}x{depth.shape[1]} depth map is resized (bicubic) to the {run.LatentWidth}x{run.LatentHeight} latent of the {run.Width}x{run.Height} image.");
        var processed = ImageConditioning.ProcessDepthMap(depth.to(run.Device), run.LatentHeight, run.LatentWidth); // [1, 1, h, w]
        _depthCondition = processed.repeat(run.Batch, 1, 1, 1);                                               // [2N, 1, h, w]
        run.Inspect("depth_map_processed", _depthCondition);
    }

    public override Tensor PrepareLatents(PipelineRun run) => run.NoisedImageLatents(_image!);               // [N, 4, h, w]

    public override Tensor ConcatConditioning(Tensor scaledLatents) =>
        torch.cat(new[] { scaledLatents, _depthCondition! }, 1);                                             // [2N, 5, h, w]
}
