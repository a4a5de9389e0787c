namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>What a task's input adds to the generation record: strength, noise level and the hashes of
/// its images.</summary>
internal sealed record TaskRecord(double? Strength, int? NoiseLevel, string? SourceImageHash, string? MaskHash,
    string? Depth = null, string? DepthEstimatorHash = null)
{
    public static TaskRecord Of(TaskInput input) => input switch
    {
        ImageToImageInput i => new(i.Strength, null, SourceHash(i), null),
        DepthToImageInput i => new(i.Strength, null, SourceHash(i), null,
            i.DepthEstimator is { } estimator ? $"estimated ({estimator})" : "given", i.DepthEstimatorHash),
        InpaintInput i => new(i.Strength, null, SourceHash(i),
            i.MaskHash ?? ImageConditioning.ToGray8(i.Mask).ComputeContentHash()),
        UpscaleInput i => new(null, i.NoiseLevel, SourceHash(i), null),
        _ => new(null, null, null, null),
    };

    /// <summary>The given hash, or the hash of the image the tensor holds.</summary>
    private static string SourceHash(ImageTaskInput input) =>
        input.SourceImageHash ?? SDImage.FromTensor(input.Image.cpu()).ComputeContentHash();
}
