using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>How to read a single-file checkpoint.</summary>
public sealed class SingleFileOptions
{
    /// <summary>
    /// An ldm inference YAML (<c>v2-inference-v.yaml</c> style). When null, <c>&lt;checkpoint name&gt;.yaml</c> beside
    /// the checkpoint is used if it exists (see <see cref="UseConfigBesideCheckpoint"/>); otherwise
    /// everything is detected.
    /// </summary>
    public string? ConfigPath { get; init; }

    /// <summary>Look for <c>&lt;checkpoint name&gt;.yaml</c> beside the checkpoint when <see
    /// cref="ConfigPath"/> is null.</summary>
    public bool UseConfigBesideCheckpoint { get; init; } = true;

    /// <summary>
    /// <c>epsilon</c> or <c>v_prediction</c> (also <c>eps</c>, <c>v</c>): overrides the config and the detection, which
    /// cannot tell SD 2.x 512-base (epsilon) from 768-v (v_prediction) by the weights.
    /// </summary>
    public string? PredictionType { get; init; }
}
