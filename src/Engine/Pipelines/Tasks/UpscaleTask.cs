using TorchSharp;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Schedulers;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>
/// The x4 upscaler: latents at the low-res size, the low-res image noised by the DDPM low_res_scheduler as three more
/// UNet channels, and the noise level as the UNet's class label. Tiled by default once the latent exceeds a tile.
/// </summary>
internal sealed class UpscaleTask : PipelineTask
{
    /// <summary>The default tile edge in latent (= low-res) pixels: 128 → 512×512 output tiles.</summary>
    public const int DefaultTileEdge = 128;

    /// <summary>max_noise_level of diffusers' pipeline and of the released model.</summary>
    public const int MaxNoiseLevel = 350;

    private readonly UpscaleInput _input;
    // [1, 3, h, w]
    private Tensor? _image;
    // [2N, 3, h, w]
    private Tensor? _lowResCondition;
    private Tensor? _classLabels;                                                                          // [2N]

    public UpscaleTask(UpscaleInput input) => _input = input;

    public override PipelineKind Kind => PipelineKind.Upscale;
    public override TaskInput Input => _input;
    public override int? DefaultTileSize => DefaultTileEdge;
    public override Tensor? ClassLabels => _classLabels;

    public override void Check(StableDiffusionModel model)
    {
        base.Check(model);
        if (model.LowResSchedulerConfig is null)
            throw new InvalidDataException($"The x4 upscaler '{model.Source}' has no low_res_scheduler config.");
    }

    /// <summary>The low-res image at a multiple of the VAE factor; the latent is that size, the output 4× it.</summary>
    public override void Prepare(PipelineRun run)
    {
        int factor = run.Model.VaeScaleFactor;
        _image = PrepareImage(run, _input.Image, outputPerInput: factor, ResizeFilter.Bicubic);
        (run.LatentWidth, run.LatentHeight) = ((int)_image.shape[3], (int)_image.shape[2]);
        (run.Width, run.Height) = (run.LatentWidth * factor, run.LatentHeight * factor);
    }

    /// <summary>The low-res image is noised at t = noise_level (drawn first), then the latents at the
    /// low-res size.</summary>
    public override Tensor PrepareLatents(PipelineRun run)
    {
        using var lowResScheduler = SchedulerRegistry.FromConfig(run.Model.LowResSchedulerConfig!);
        var noiseLevel = torch.tensor(new long[] { _input.NoiseLevel }, ScalarType.Int64, run.Device);     // [1]
        run.Inspect("lowres_add_noise_input", _image!);
        // [1, 3, h, w]
        var lowResNoise = run.Noise.Randn(_image!.shape, ScalarType.Float32).to(run.Device);
        run.Inspect("lowres_noise", lowResNoise);
        run.Inspect("noise_level", noiseLevel);
        // [1, 3, h, w]
        var noised = lowResScheduler.AddNoise(_image, lowResNoise, noiseLevel);
        run.Inspect("lowres_noised_image", noised);
        // [2N, 3, h, w]
        _lowResCondition = noised.repeat(run.Batch, 1, 1, 1);
        _classLabels = noiseLevel.repeat(run.Batch);                                                        // [2N]
        // [N, 4, h, w]
        return run.PureNoiseLatents();
    }

    public override Tensor ConcatConditioning(Tensor scaledLatents) =>
        // [2N, 7, h, w]
        torch.cat(new[] { scaledLatents, _lowResCondition! }, 1);
}
