using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// The state of one pipeline call that the shared core and the task's own part both read: the model, the request, the
/// noise source, the batch, the sizes the task settled on, and the scheduler with its (strength-cut) timesteps.
/// </summary>
internal sealed class PipelineRun
{
    public PipelineRun(
        StableDiffusionModel model, GenerationRequest request, PipelineObserver observer, INoiseSource noise)
    {
        Model = model;
        Request = request;
        Observer = observer;
        Noise = noise;
    }

    public StableDiffusionModel Model { get; }
    public GenerationRequest Request { get; }

    /// <summary>The textual-inversion embeddings the prompts used (set when they are encoded).</summary>
    public IReadOnlyList<Text.Embeddings.UsedEmbedding> Embeddings { get; set; } = [];
    public PipelineObserver Observer { get; }

    /// <summary>Every random draw of the call, in diffusers' order: the seeded CPU generator, or a test's
    /// stored noise.</summary>
    public INoiseSource Noise { get; }

    public Device Device => Model.Target.Device;

    /// <summary>Classifier-free guidance runs the UNet on [uncond, cond] when the scale is above 1.</summary>
    public bool Guided => Request.GuidanceScale > 1.0;

    /// <summary>Images per call (N).</summary>
    public int Count => Request.Count;

    /// <summary>The UNet batch: 2N when guided, else N.</summary>
    public int Batch => Guided ? 2 * Count : Count;

    /// <summary>Output size in pixels and latent size, as the task set them in
    /// <see cref="PipelineTask.Prepare"/>.</summary>
    public int Width { get; set; }
    public int Height { get; set; }
    public int LatentWidth { get; set; }
    public int LatentHeight { get; set; }

    /// <summary>Set by the core before the task prepares its latents.</summary>
    public SchedulerBase Scheduler { get; set; } = null!;

    /// <summary>The timesteps the loop runs ([k]), after a strength cut.</summary>
    public Tensor Timesteps { get; set; } = null!;

    /// <summary>How many VAE encodes the call ran so far (names the golden tensors vae_encode0,
    /// vae_encode1, ...).</summary>
    public int EncodeCount { get; private set; }

    /// <summary>[N, C, h, w] for the latents the loop runs on.</summary>
    public long[] LatentShape => new long[] { Count, Model.Unet.Config.OutChannels, LatentHeight, LatentWidth };

    public void Inspect(string name, Tensor tensor) => Observer.Inspect?.Invoke(name, tensor);

    /// <summary>Pure noise × init_noise_sigma (txt2img, strength-1 inpainting, the upscaler). Every draw is float32 on
    /// the CPU generator whatever the compute dtype, so a seed paints the same picture in every precision.</summary>
    public Tensor PureNoiseLatents() =>
        // [N, 4, h, w]
        (ScalarSafeTensor)Noise.Randn(LatentShape, ScalarType.Float32).to(Device) * Scheduler.InitNoiseSigma;

    /// <summary>
    /// diffusers' <c>vae.encode(image).latent_dist.sample(generator)</c> × scaling_factor: one posterior draw of the
    /// posterior's shape. Returns float32 [1, 4, h, w].
    /// </summary>
    public Tensor EncodeImage(Tensor image)
    {
        var name = $"vae_encode{EncodeCount++}";
        Inspect(name + "_input", image);
        using var posterior = Model.Vae.Encode(image.to(Model.VaeDType));
        // [1, 4, h, w]
        var mean = posterior.Mean.to(ScalarType.Float32);
        var std = posterior.Std.to(ScalarType.Float32);
        Inspect(name + "_posterior_mean", mean);
        Inspect(name + "_posterior_std", std);
        var sample = Noise.Randn(posterior.Mean.shape, ScalarType.Float32).to(image.device);
        return ((ScalarSafeTensor)mean + (ScalarSafeTensor)std * (ScalarSafeTensor)sample)
            * Model.Vae.Config.ScalingFactor;
    }

    /// <summary>img2img's start: noise of the batch shape added at the first timestep of the cut schedule.</summary>
    public Tensor AddNoiseAtStart(Tensor imageLatents)
    {
        // [N, 4, h, w]
        var startNoise = Noise.Randn(imageLatents.shape, ScalarType.Float32).to(imageLatents.device);
        var start = Timesteps.slice(0, 0, 1, 1).repeat(Count);                                              // [N]
        Inspect("add_noise_original", imageLatents);
        Inspect("add_noise_noise", startNoise);
        Inspect("add_noise_timestep", start);
        // [N, 4, h, w]
        var noised = Scheduler.AddNoise(imageLatents, startNoise, start);
        Inspect("add_noise_output", noised);
        return noised;
    }

    /// <summary>The encoded image, repeated for the batch and noised at the first timestep (img2img, depth2img,
    /// inpainting below strength 1).</summary>
    // [N, 4, h, w]
    public Tensor NoisedImageLatents(Tensor image) => AddNoiseAtStart(EncodeImage(image).repeat(Count, 1, 1, 1));
}
