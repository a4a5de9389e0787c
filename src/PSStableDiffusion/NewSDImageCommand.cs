using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Generates images from a text prompt with a Stable Diffusion 2.x model. Each prompt from the pipeline gives
/// <see cref="Count"/> images. Piping an SDImage in replays its prompt, seed, steps, guidance, scheduler and size.
/// </summary>
[Cmdlet(VerbsCommon.New, "SDImage", DefaultParameterSetName = TextToImageSet)]
[OutputType(typeof(SDImage))]
public sealed class NewSDImageCommand : SDCmdletBase
{
    #region Members

    private const string TextToImageSet = "TextToImage";
    private const int ProgressActivityId = 1;

    private ComputeTarget? _target;

    #endregion

    #region Parameters

    /// <summary>What to draw.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string Prompt { get; set; } = "";

    /// <summary>What to steer away from (the unconditional half of classifier-free guidance).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string NegativePrompt { get; set; } = "";

    /// <summary>A diffusers model folder (model_index.json with tokenizer, text_encoder, unet, vae, scheduler).</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Model { get; set; } = "";

    /// <summary>Denoising steps (diffusers' num_inference_steps).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1000)]
    public int Steps { get; set; } = 50;

    /// <summary>Classifier-free guidance scale; 1 or less skips the unconditional pass.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0.0, 100.0)]
    public double GuidanceScale { get; set; } = 7.5;

    /// <summary>Seed of the CPU generator: the same seed gives the same image as diffusers with torch.Generator('cpu').manual_seed(seed). Random when omitted, and recorded.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0L, long.MaxValue)]
    public long? Seed { get; set; }

    /// <summary>Output width in pixels, a multiple of 8; the model's default size when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(8, 4096)]
    public int? Width { get; set; }

    /// <summary>Output height in pixels, a multiple of 8; the model's default size when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(8, 4096)]
    public int? Height { get; set; }

    /// <summary>A diffusers scheduler class name or an AUTOMATIC1111 sampler name; the model's own when omitted.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SchedulerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Scheduler { get; set; }

    /// <summary>DDIM's eta: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. Only for schedulers that take it.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(0.0, 1.0)]
    public double? Eta { get; set; }

    /// <summary>Use Karras sigmas (use_karras_sigmas) on schedulers that support them; -KarrasSigmas:$false forces them off.</summary>
    [Parameter]
    public SwitchParameter KarrasSigmas { get; set; }

    /// <summary>Images per prompt, drawn as diffusers' num_images_per_prompt.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int Count { get; set; } = 1;

    /// <summary>cpu, cuda or cuda:N. Defaults to the first CUDA device when there is one, else the CPU.</summary>
    [Parameter]
    [ValidatePattern(@"^(cpu|cuda(:\d+)?)$")]
    public string? Device { get; set; }

    /// <summary>float32 (default), bfloat16, or float16 (CUDA only).</summary>
    [Parameter]
    public Precision Precision { get; set; } = Precision.Float32;

    #endregion

    #region Overrides

    protected override void BeginProcessing()
    {
        base.BeginProcessing();
        try
        {
            _target = ComputeParameters.Resolve(Device, Precision);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "InvalidDevice", Device ?? Precision.ToString()));
        }
    }

    protected override void ProcessRecord()
    {
        if (Width is { } width && width % 8 != 0)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"Width must be a multiple of 8; {width} is not."),
                "InvalidImageSize", ErrorCategory.InvalidArgument, width));
        if (Height is { } height && height % 8 != 0)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"Height must be a multiple of 8; {height} is not."),
                "InvalidImageSize", ErrorCategory.InvalidArgument, height));
        if (Scheduler is not null && !SchedulerRegistry.TryResolve(Scheduler, out _))
            ThrowTerminatingError(ToErrorRecord(new UnknownSchedulerException(Scheduler, SchedulerRegistry.AllNames), "UnknownScheduler", Scheduler));

        var modelPath = ResolvePath(Model);
        var seed = Seed ?? Random.Shared.NextInt64(0, 1L << 32);
        var request = new GenerationRequest
        {
            Prompt = Prompt,
            NegativePrompt = NegativePrompt ?? "",
            Steps = Steps,
            GuidanceScale = GuidanceScale,
            Seed = seed,
            Width = Width,
            Height = Height,
            Count = Count,
            Scheduler = Scheduler,
            Eta = Eta,
            KarrasSigmas = MyInvocation.BoundParameters.ContainsKey(nameof(KarrasSigmas)) ? KarrasSigmas.IsPresent : null,
        };
        var activity = $"New-SDImage: {Truncate(Prompt, 60)}";
        var observer = new PipelineObserver
        {
            Cancellation = Cancellation,
            Log = WriteVerbose,
            Warn = WriteWarning,
            Progress = step => WriteStepProgress(ProgressActivityId, activity, step),
        };

        IReadOnlyList<SDImage> images;
        try
        {
            images = RunEngine(() =>
            {
                using var lease = ModelStore.Acquire(modelPath, _target!, WriteVerbose, Cancellation);
                SchedulerRegistry.ValidateOptions(Scheduler ?? lease.Engine.SchedulerConfig.ClassName ?? "DDIM", request.Eta, request.KarrasSigmas);
                WriteVerbose($"Generating {Count} image(s), seed {seed}, {Steps} steps, guidance {GuidanceScale}.");
                return ImageGeneration.Generate(lease.Engine, request, PipelineKind.Txt2Img, observer);
            });
        }
        catch (Exception e) when (e is not PipelineStoppedException and not OperationCanceledException)
        {
            ThrowTerminatingError(ToErrorRecord(e, "GenerationFailed", Model));
            return;
        }
        foreach (var image in images)
        {
            var timings = string.Join(", ", image.Record.Timings.Select(t => $"{t.Key} {t.Value:F2} s"));
            WriteVerbose($"Image {image.ImageIndex + 1}/{images.Count}: {timings}.");
            WriteObject(image);
        }
    }

    #endregion

    #region Private methods

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    #endregion
}
