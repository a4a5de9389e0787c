using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// What one generation call holds at its peak beyond what is already in use, estimated before it runs: the larger of
/// the UNet's and the VAE decoder's activations (they never overlap: the UNet's are freed before the decode), plus the
/// weights that are file mappings and so must stay in the page cache for the call to run at speed.
/// </summary>
public sealed record MemoryEstimate
{
    /// <summary>One UNet call's activations (the CFG batch, or one tile of it).</summary>
    public required long UnetBytes { get; init; }

    /// <summary>The VAE decode's activations (the whole batch, or one tile plus the blended output).</summary>
    public required long DecoderBytes { get; init; }

    /// <summary>Weights that view a mapped file (CPU, file dtype = model dtype): the page cache must
    /// keep them.</summary>
    public required long MappedWeightBytes { get; init; }

    /// <summary>The peak the call adds: the larger activation stage, plus the mapped weights.</summary>
    public long PeakBytes => Math.Max(UnetBytes, DecoderBytes) + MappedWeightBytes;

    /// <summary>Which stage sets the peak ("UNet" or "decoder").</summary>
    public string PeakStage => DecoderBytes > UnetBytes ? "decoder" : "UNet";
}
