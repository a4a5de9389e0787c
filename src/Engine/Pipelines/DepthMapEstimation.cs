using System.Diagnostics;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Models.Dpt;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// A depth map of an image at the image's own size, as 16-bit grayscale (Get-SDDepthMap): the estimator's prediction
/// resized bicubic (<c>align_corners=False</c>) as transformers' depth-estimation pipeline resizes it, then either
/// scaled by its peak as that pipeline scales it (at 16 bits instead of 8), or min-max normalised as
/// MiDaS' <c>write_depth</c>
/// writes 16-bit maps. Brighter is nearer (MiDaS predicts inverse depth).
/// </summary>
public static class DepthMapEstimation
{
    /// <summary>The largest 16-bit level.</summary>
    public const int MaxLevel = ushort.MaxValue;

    /// <summary>numpy's <c>np.finfo("float").eps</c>, MiDaS' test for a constant map.</summary>
    private const double NumpyFloatEpsilon = 2.220446049250313e-16;

    /// <summary>What the record's Depth field says for an estimated map.</summary>
    public static string DepthSourceText => $"estimated ({DepthEstimator.ArchitectureName})";

    /// <summary>
    /// Estimates the depth of <paramref name="image"/> with <paramref name="estimator"/> and returns it as an image
    /// holding 16-bit levels (<see cref="SDImage.Gray16"/>) with a record naming the estimator, its hash, the source
    /// image and the prediction range the levels span.
    /// </summary>
    /// <param name="normalize">Min-max to 0..65535 (MiDaS); otherwise the prediction × 65535 / its peak.</param>
    /// <param name="modelPath">The model the estimator came from, for the record.</param>
    /// <param name="warn">Told when the map is flat (a constant prediction).</param>
    /// <exception cref="NonFiniteOutputException">The prediction holds NaN or infinity.</exception>
    public static SDImage Estimate(DepthEstimator estimator, SDImage image, bool normalize, string? modelPath,
        Action<string>? log = null, Action<string>? warn = null)
    {
        var clock = Stopwatch.StartNew();
        float[] values;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            var depth = estimator.PredictAt(image, image.Height, image.Width); // [1, H, W] float32
            NonFiniteOutputException.ThrowIfNotFinite(depth, "depth estimator");
            values = depth.cpu().data<float>().ToArray();
        }
        var seconds = clock.Elapsed.TotalSeconds;
        var (levels, low, high) = Quantize(values, normalize, MaxLevel);
        var (inputHeight, inputWidth) = estimator.Processor.OutputSize(image.Height, image.Width);
        log?.Invoke($"Estimated the {image.Width}x{image.Height} depth with {DepthEstimator.ArchitectureName} " +
            $"({inputWidth}x{inputHeight} input) in {seconds:F2} s; " +
            $"prediction {values.Min():G4} .. {values.Max():G4}, levels 0..{MaxLevel} span {low:G6} .. {high:G6}.");
        if (high <= low)
            warn?.Invoke(
                $"The estimated depth is constant ({values[0]:G6}) over the " +
                $"whole {image.Width}x{image.Height} image: the map is flat " +
                "(all 0), as MiDaS writes a constant map. Depth-to-image refuses a constant depth map.");
        var record = new GenerationRecord
        {
            Width = image.Width,
            Height = image.Height,
            ModelPath = modelPath,
            DType = ModelCatalog.DTypeName(estimator.DType),
            Device = estimator.Device.ToString(),
            ModuleVersion = ImageGeneration.ModuleVersion,
            SourceImageHash = image.ComputeContentHash(),
            Depth = DepthSourceText,
            DepthEstimatorHash = estimator.Hash,
            DepthNormalized = normalize,
            DepthRange = [low, high],
            CreatedUtc = DateTimeOffset.UtcNow,
        };
        record.Timings["depth_estimation"] = seconds;
        return SDImage.FromGray16(new GrayImage(image.Width, image.Height, 16, levels), record);
    }

    /// <summary>
    /// The levels of a depth map, in double: normalised, <c>trunc(max · (d − min) / (max_d − min_d))</c> (MiDaS'
    /// write_depth; all 0 when the range is not above double epsilon); otherwise <c>trunc(max · d / max_d)</c>
    /// (transformers' depth-estimation pipeline), with bicubic overshoot below 0 clipped to 0 (all 0 when the peak is
    /// not positive).
    /// </summary>
    /// <returns>The levels and the prediction values that level 0 and <paramref name="maxLevel"/> stand for (equal
    /// when the map is flat): level v is <c>low + v · (high − low) / maxLevel</c>.</returns>
    public static (ushort[] Levels, double Low, double High) Quantize(
        IReadOnlyList<float> depth, bool normalize, int maxLevel)
    {
        if (maxLevel is < 1 or > MaxLevel)
            throw new ArgumentOutOfRangeException(nameof(maxLevel), maxLevel, $"Levels go up to 1..{MaxLevel}.");
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var value in depth) (min, max) = (Math.Min(min, value), Math.Max(max, value));
        var levels = new ushort[depth.Count];
        if (normalize)
        {
            if (!(max - min > NumpyFloatEpsilon)) return (levels, min, min);
            for (var i = 0; i < levels.Length; i++) levels[i] = (ushort)(maxLevel * (depth[i] - min) / (max - min));
            return (levels, min, max);
        }
        if (!(max > 0)) return (levels, 0, 0);
        for (var i = 0; i < levels.Length; i++) levels[i] = (ushort)Math.Max(0, depth[i] * (double)maxLevel / max);
        return (levels, 0, max);
    }
}
