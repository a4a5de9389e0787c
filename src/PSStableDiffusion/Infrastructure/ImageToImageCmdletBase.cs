using System.Management.Automation;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// The sampling parameters of the cmdlets that work on a piped image (Invoke-SDInpaint, Resize-SDUpscale). They take
/// the piped image's negative prompt by property name; steps and guidance default to each pipeline's own values,
/// which a cmdlet sets in its constructor.
/// </summary>
public abstract class ImageToImageCmdletBase : GenerationCmdletBase
{
    /// <summary>What to steer away from.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string NegativePrompt { get; set; } = "";

    /// <summary>Denoising steps.</summary>
    [Parameter]
    [ValidateRange(1, 1000)]
    public int Steps { get; set; } = 50;

    /// <summary>Classifier-free guidance scale.</summary>
    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public double GuidanceScale { get; set; } = 7.5;

    /// <summary>Seed of the CPU generator (random when omitted, and recorded).</summary>
    [Parameter]
    [ValidateRange(0L, long.MaxValue)]
    public long? Seed { get; set; }

    /// <summary>A diffusers scheduler class name or an AUTOMATIC1111 sampler name; the model's own
    /// when omitted.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(SchedulerNameCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Scheduler { get; set; }
}
