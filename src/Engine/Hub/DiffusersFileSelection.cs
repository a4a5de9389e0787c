using System.Text.Json;
using PSStableDiffusion.Engine.Loading;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Chooses which files of a diffusers repository a pipeline needs: <c>model_index.json</c>, then for each wanted
/// component listed in it the config / tokenizer files of its folder and one set of weights, chosen by
/// <see cref="WeightFileSelection"/> (the rule a diffusers folder on disk loads by). The same selection runs on the
/// hub's file list and on a cached snapshot.
/// </summary>
public static class DiffusersFileSelection
{
    public const string ModelIndex = "model_index.json";

    /// <summary>The components the engine loads (<c>low_res_scheduler</c> only exists in upscaler repositories): a
    /// snapshot holding these is complete for the engine.</summary>
    public static IReadOnlyList<string> EngineComponents { get; } =
        new[] { "tokenizer", "text_encoder", "unet", "vae", "scheduler", "low_res_scheduler" };

    /// <summary>What a download fetches: the engine's components plus the small config-only folders diffusers loads
    /// too (<c>feature_extractor/</c>, a few KB), so that a Python user of the shared cache finds a complete snapshot
    /// offline.</summary>
    public static IReadOnlyList<string> DefaultComponents { get; } =
        EngineComponents.Append("feature_extractor").ToArray();

    private static readonly string[] ConfigExtensions = { ".json", ".txt", ".model" };

    /// <summary>Component names listed in <paramref name="modelIndexJson"/> with a non-null [library, class], kept
    /// in the order of <paramref name="wanted"/>; each with whether it holds weights (not a tokenizer or
    /// scheduler).</summary>
    public static IReadOnlyList<(string Name, bool HasWeights)> Components(
        string modelIndexJson, IEnumerable<string> wanted)
    {
        using var doc = JsonDocument.Parse(modelIndexJson);
        var result = new List<(string, bool)>();
        foreach (var name in wanted)
        {
            if (!doc.RootElement.TryGetProperty(name, out var entry) || entry.ValueKind != JsonValueKind.Array ||
                entry.GetArrayLength() != 2 || entry[1].ValueKind != JsonValueKind.String)
                continue;
            var cls = entry[1].GetString()!;
            bool configOnly = cls.Contains("Tokenizer", StringComparison.Ordinal) ||
                cls.EndsWith("Scheduler", StringComparison.Ordinal) ||
                cls.Contains("FeatureExtractor", StringComparison.Ordinal)
                    || cls.Contains("ImageProcessor", StringComparison.Ordinal);
            result.Add((name, !configOnly));
        }
        return result;
    }

    /// <summary>
    /// The files to fetch out of <paramref name="available"/> (repository paths with '/'), model_index.json first.
    /// Throws <see cref="HubNotFoundException"/> naming the component when a needed config or weights file is absent.
    /// </summary>
    public static IReadOnlyList<string> Select(IReadOnlyCollection<string> available, string modelIndexJson,
        string? variant, IEnumerable<string>? components = null)
    {
        var selected = new List<string> { ModelIndex };
        foreach (var (component, hasWeights) in Components(modelIndexJson, components ?? DefaultComponents))
        {
            var prefix = component + "/";
            var files = available.Where(f => f.StartsWith(prefix, StringComparison.Ordinal)
                && f.IndexOf('/', prefix.Length) < 0)
                .Select(f => f[prefix.Length..]).ToList();
            // A config-only folder is fetched whole (minus any stray weights); a model folder's configs by extension.
            var configs = files.Where(f => WeightFileSelection.Describe(f) is null
                    && (!hasWeights || ConfigExtensions.Any(e => f.EndsWith(e, StringComparison.Ordinal))))
                .Order(StringComparer.Ordinal).ToList();
            // an extra the engine does not need
            if (configs.Count == 0 && !EngineComponents.Contains(component)) continue;
            if (configs.Count == 0)
                throw new HubNotFoundException($"Component '{component}' has no config files in the repository.");
            if (hasWeights && !configs.Contains("config.json"))
                throw new HubNotFoundException($"Component '{component}' has no config.json in the repository.");
            selected.AddRange(configs.Select(f => prefix + f));
            if (hasWeights) selected.AddRange(SelectWeights(files, variant, component).Select(f => prefix + f));
        }
        return selected;
    }

    private static IReadOnlyList<string> SelectWeights(List<string> files, string? variant, string component) =>
        WeightFileSelection.Select(files, variant) ?? throw new HubNotFoundException(
            $"Component '{component}' has no " +
            $"{(variant is null ? "" : variant + " or plain ")}safetensors/.bin weights " +
            $"(files: {string.Join(", ", files)}).");
}
