using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine;

/// <summary>
/// One model on disk as <c>Get-SDModel</c> lists it, described from its configs and weight headers (no weights read).
/// </summary>
public sealed record ModelDescription
{
    /// <summary>The hub id for hub models, else the folder or file name.</summary>
    public required string Name { get; init; }

    /// <summary>Full path of the folder, snapshot folder or file: what <c>-Model</c> takes.</summary>
    public required string Path { get; init; }

    /// <summary><see cref="ModelCatalog.FolderSource"/>, <see cref="ModelCatalog.SingleFileSource"/> or
    /// <see cref="ModelCatalog.HubSource"/>.</summary>
    public required string Source { get; init; }

    /// <summary>txt2img, inpainting, depth2img or x4-upscaler; null when the model could not be described.</summary>
    public string? Kind { get; init; }

    /// <summary>Depth models: whether the model ships its MiDaS depth estimator (a <c>depth_estimator/</c> folder, or a
    /// single file's <c>depth_model.*</c> weights), so depth-to-image runs without a depth map. Null for
    /// other kinds.</summary>
    public bool? HasDepthEstimator { get; init; }

    /// <summary>epsilon or v_prediction (for single files, as the planner decides it; see
    /// <see cref="Notes"/>).</summary>
    public string? PredictionType { get; init; }

    /// <summary>The output size the model was trained for, in pixels (square).</summary>
    public int? DefaultSize { get; init; }

    /// <summary>The element type of the UNet weights on disk (float32, float16, bfloat16).</summary>
    public string? DType { get; init; }

    /// <summary>Bytes on disk (for hub snapshots, the blobs the snapshot links to).</summary>
    public long SizeOnDisk { get; init; }

    /// <summary>Hub models: the commit of the snapshot.</summary>
    public string? Commit { get; init; }

    /// <summary>Hub models: the branches or tags that pointed at this commit when last downloaded
    /// (e.g. main).</summary>
    public IReadOnlyList<string> Refs { get; init; } = Array.Empty<string>();

    /// <summary>Single files: the ldm YAML beside the checkpoint that was used, if any.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>Single files: what the planner detected and assumed (as <c>-Verbose</c> shows when loading).</summary>
    public IReadOnlyList<string> Notes { get; init; } = Array.Empty<string>();

    /// <summary>Why the model could not be described (unreadable file, not SD 2.x, ...); null when it was.</summary>
    public string? Error { get; init; }
}
