using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>Turns pipeline results into <see cref="SDImage"/> objects that carry their whole
/// generation record.</summary>
public static class ImageGeneration
{
    private static readonly JsonSerializerOptions ConfigJson = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The engine's version, recorded in every image.</summary>
    public static string ModuleVersion { get; } =
        typeof(ImageGeneration)
            .Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()
            ?.InformationalVersion.Split('+')[0]
        ?? typeof(ImageGeneration).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    /// <summary>Runs <paramref name="request"/> on <paramref name="model"/> and returns one image per
    /// requested image.</summary>
    public static IReadOnlyList<SDImage> Generate(
        StableDiffusionModel model, GenerationRequest request, PipelineObserver? observer = null)
    {
        using var result = StableDiffusionPipeline.Generate(model, request, observer);
        var created = DateTimeOffset.UtcNow;
        var schedulerConfig = JsonSerializer.SerializeToNode(result.SchedulerConfig, ConfigJson) as JsonObject;
        var modelHash = model.ContentHash;
        var input = TaskRecord.Of(result.Input);
        return SDImage.FromTensorBatch(result.Images, index => new GenerationRecord
        {
            Prompt = request.Prompt,
            NegativePrompt = request.NegativePrompt,
            Seed = request.Seed,
            Steps = request.Steps,
            GuidanceScale = request.GuidanceScale,
            // The name asked for ("DPM++ 2M Karras") implies config keys the class name does not, so replays need it.
            Scheduler = request.Scheduler is { } asked ? SchedulerRegistry.Resolve(asked).Name : result.SchedulerName,
            SchedulerConfig = schedulerConfig?.DeepClone() as JsonObject,
            Width = result.Width,
            Height = result.Height,
            ModelPath = model.Source,
            ModelHash = modelHash,
            ModelProvenance = Hub.ModelProvenance.Of(model),
            DType = model.Target.DTypeName,
            Device = model.Target.DeviceName,
            Timings = new Dictionary<string, double>(result.Timings, StringComparer.Ordinal),
            ModuleVersion = ModuleVersion,
            PipelineKind = result.Kind,
            ImageIndex = index,
            BatchSize = request.Count,
            Eta = request.Eta,
            KarrasSigmas = request.KarrasSigmas,
            Strength = input.Strength,
            NoiseLevel = input.NoiseLevel,
            SourceImageHash = input.SourceImageHash,
            MaskHash = input.MaskHash,
            Depth = input.Depth,
            DepthEstimatorHash = input.DepthEstimatorHash,
            DecoderTileSize = request.DecoderTileSize is > 0 ? request.DecoderTileSize : null,
            Loras = result.Loras.Count > 0 ? result.Loras.ToList() : null,
            CreatedUtc = created,
            PromptSyntax = request.PromptSyntax.ToString(),
            Embeddings = result.Embeddings.Count == 0 ? null
                : result.Embeddings.ToDictionary(e => e.Name, e => e.ShortHash, StringComparer.Ordinal),
        });
    }
}
