using TorchSharp;
using PSStableDiffusion.Engine.Imaging;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Depth-to-image: image-to-image latents, with the normalised depth map as the UNet's
/// fifth channel.</summary>
internal sealed class DepthToImageTask : PipelineTask
{
    private DepthToImageInput _input;
    private Tensor? _image;
    // [2N, 1, h, w]
    private Tensor? _depthCondition;

    public DepthToImageTask(DepthToImageInput input) => _input = input;

    public override PipelineKind Kind => PipelineKind.Depth2Img;
    public override TaskInput Input => _input;
    public override double? Strength => _input.Strength;

    public override void Check(StableDiffusionModel model)
    {
        base.Check(model);
        if (_input.DepthMap is not null) ImageConditioning.NormalizeDepth(_input.DepthMap).Dispose();
        else if (!model.HasDepthEstimator)
            throw new PipelineMismatchException(model.Kind, Kind, model.Source,
                "depth-to-image without a depth map estimates one with the " +
                "model's MiDaS depth estimator, but this model has none " +
                "(no depth_estimator folder, no depth_model.* weights); pass a depth map (DepthMap).");
    }

    public override void Prepare(PipelineRun run)
    {
        // [1, 3, H, W]
        _image = PrepareImage(run, _input.Image, outputPerInput: 1, ResizeFilter.Lanczos);
        SetSizesFromImage(run, _image);
        // [1, Hd, Wd]
        var depth = _input.DepthMap is null ? EstimateDepth(run) : ImageConditioning.NormalizeDepth(_input.DepthMap);
        run.Inspect("input_depth_map", depth);
        if (depth.shape[1] != run.Height || depth.shape[2] != run.Width)
            run.Observer.Log?.Invoke(
                $"The {depth.shape[2]}x{depth.shape[1]} depth map is resized (bicubic) to the " +
                $"{run.LatentWidth}x{run.LatentHeight} latent of the {run.Width}x{run.Height} image.");
        // [1, 1, h, w]
        var processed = ImageConditioning.ProcessDepthMap(depth.to(run.Device), run.LatentHeight, run.LatentWidth);
        // [2N, 1, h, w]
        _depthCondition = processed.repeat(run.Batch, 1, 1, 1);
        run.Inspect("depth_map_processed", _depthCondition);
    }

    /// <summary>diffusers' prepare_depth_map without a depth map: the estimator's prediction for the input image as
    /// given (its processor resizes it), recorded on the input as it ran.</summary>
    private Tensor EstimateDepth(PipelineRun run)
    {
        var estimator = run.Model.GetDepthEstimator(run.Observer.Log);
        var source = SDImage.FromTensor(_input.Image.cpu());
        var clock = System.Diagnostics.Stopwatch.StartNew();
        // [1, h', w']
        var depth = estimator.Predict(source).to(ScalarType.Float32);
        run.Observer.Log?.Invoke(
            $"No depth map given: estimated one with {DepthEstimatorName} " +
            $"({depth.shape[2]}x{depth.shape[1]}) in {clock.Elapsed.TotalSeconds:F2} s.");
        run.Inspect("predicted_depth", depth);
        _input = _input with { DepthEstimator = DepthEstimatorName, DepthEstimatorHash = estimator.Hash };
        return depth;
    }

    private const string DepthEstimatorName = Models.Dpt.DepthEstimator.ArchitectureName;

    // [N, 4, h, w]
    public override Tensor PrepareLatents(PipelineRun run) => run.NoisedImageLatents(_image!);

    public override Tensor ConcatConditioning(Tensor scaledLatents) =>
        // [2N, 5, h, w]
        torch.cat(new[] { scaledLatents, _depthCondition! }, 1);
}
