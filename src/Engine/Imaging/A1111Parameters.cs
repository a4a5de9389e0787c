using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// The <c>parameters</c> text that AUTOMATIC1111's web UI stores in PNGs, which most image tools read:
/// <code>
/// prompt (may span lines)
/// Negative prompt: negative prompt (may span lines)
/// Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash:
/// 1a2b3c4d5e, Model: v2-1_768
/// </code>
/// </summary>
public static partial class A1111Parameters
{
    /// <summary>PNG text keyword the web UI uses.</summary>
    public const string Keyword = "parameters";

    // diffusers scheduler class → web UI sampler name (the names its infotext uses).
    private static readonly (string Scheduler, string Sampler)[] SamplerNames =
    [
        ("DDIMScheduler", "DDIM"),
        ("PNDMScheduler", "PLMS"),
        ("LMSDiscreteScheduler", "LMS"),
        ("EulerDiscreteScheduler", "Euler"),
        ("EulerAncestralDiscreteScheduler", "Euler a"),
        ("HeunDiscreteScheduler", "Heun"),
        ("KDPM2DiscreteScheduler", "DPM2"),
        ("KDPM2AncestralDiscreteScheduler", "DPM2 a"),
        ("DPMSolverMultistepScheduler", "DPM++ 2M"),
        ("DPMSolverSinglestepScheduler", "DPM++ 2S"),
        ("DPMSolverSDEScheduler", "DPM++ SDE"),
        ("UniPCMultistepScheduler", "UniPC"),
        ("DDPMScheduler", "DDPM"),
        ("DEISMultistepScheduler", "DEIS"),
        ("LCMScheduler", "LCM"),
    ];

    /// <summary>The web UI's sampler name for a scheduler (class name with or without the Scheduler suffix).</summary>
    public static string SamplerName(string scheduler, JsonObject? config = null)
    {
        var className = scheduler.EndsWith("Scheduler", StringComparison.Ordinal) ? scheduler : scheduler + "Scheduler";
        foreach (var (s, sampler) in SamplerNames)
        {
            if (!string.Equals(s, className, StringComparison.OrdinalIgnoreCase)) continue;
            return s == "DPMSolverMultistepScheduler" && ConfigString(config, "algorithm_type") is "sde-dpmsolver++"
                ? "DPM++ 2M SDE" : sampler;
        }
        return scheduler;
    }

    /// <summary>Formats a record as the web UI's infotext.</summary>
    public static string Format(GenerationRecord record)
    {
        var text = new StringBuilder(record.Prompt);
        // The web UI applies LoRAs through prompt tags only: those given as a parameter get one at the prompt's end (as
        // its "add network to prompt" setting writes it), so the text makes the same image there and in a replay,
        // where the tag then stands for the LoRA (Parse marks it as the prompt's).
        foreach (var use in record.Loras ?? [])
            if (!use.FromPrompt
                && Lora.LoraPromptTags.Format(use.Name, use.TextEncoderMultiplier, use.UnetMultiplier) is { } tag)
                text.Append(text.Length == 0 ? "" : " ").Append(tag);
        if (!string.IsNullOrEmpty(record.NegativePrompt))
            text.Append("\nNegative prompt: ").Append(record.NegativePrompt);

        var fields = new List<(string Key, string Value)>
        {
            ("Steps", Number(record.Steps)),
            ("Sampler", SamplerName(record.Scheduler, record.SchedulerConfig)),
        };
        if (ConfigBool(record.SchedulerConfig, "use_karras_sigmas")) fields.Add(("Schedule type", "Karras"));
        fields.Add(("CFG scale", Number(record.GuidanceScale)));
        fields.Add(("Seed", Number(record.Seed)));
        fields.Add(("Size", $"{record.Width}x{record.Height}"));
        if (!string.IsNullOrEmpty(record.ModelHash))
            fields.Add(("Model hash", record.ModelHash.Length > 10 ? record.ModelHash[..10] : record.ModelHash));
        if (record.ModelName is { } model) fields.Add(("Model", model));
        if (record.Strength is { } strength) fields.Add(("Denoising strength", Number(strength)));
        if (record.Eta is { } eta) fields.Add(("Eta", Number(eta)));
        if (record.NoiseLevel is { } noiseLevel) fields.Add(("Noise level", Number(noiseLevel)));
        if (record.Embeddings is { Count: > 0 } embeddings) fields.Add(("TI hashes", FormatHashes(embeddings)));
        if (record.Loras is { Count: > 0 } loras)
            fields.Add(("Lora hashes", string.Join(", ", loras.Select(l => $"{l.Name}: {l.Hash}"))));
        if (!string.IsNullOrEmpty(record.ModuleVersion))
            fields.Add(("Version", "PSStableDiffusion " + record.ModuleVersion));

        text.Append('\n').AppendJoin(", ", fields.Select(f => $"{f.Key}: {Quote(f.Value)}"));
        return text.ToString();
    }

    /// <summary>
    /// Reads the web UI's infotext: prompt, negative prompt, steps, sampler, CFG scale, seed, size, model (name and
    /// hash), denoising strength, eta. Unknown fields are ignored; values that do not parse are left at defaults.
    /// </summary>
    public static GenerationRecord Parse(string text)
    {
        var record = new GenerationRecord();
        var lines = text.Trim().Replace("\r\n", "\n").Split('\n').ToList();
        var fieldLine = lines.Count > 0 ? lines[^1] : "";
        // As the web UI does: the last line is the field line only when it holds at least three "key: value" pairs.
        var fields = FieldPattern().Matches(fieldLine);
        if (fields.Count >= 3) lines.RemoveAt(lines.Count - 1);
        else fields = FieldPattern().Matches("");

        var prompt = new List<string>();
        var negative = new List<string>();
        var inNegative = false;
        foreach (var raw in lines)
        {
            var line = raw;
            if (line.StartsWith("Negative prompt:", StringComparison.Ordinal))
            {
                inNegative = true;
                line = line["Negative prompt:".Length..].Trim();
            }
            (inNegative ? negative : prompt).Add(line);
        }
        record.Prompt = string.Join("\n", prompt).Trim();
        record.NegativePrompt = string.Join("\n", negative).Trim();

        var sampler = "";
        var karras = false;
        foreach (Match field in fields)
        {
            var key = field.Groups[1].Value.Trim();
            var value = Unquote(field.Groups[2].Value.Trim());
            switch (key)
            {
                case "Steps":
                    if (int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var steps))
                        record.Steps = steps;
                    break;
                case "Sampler": sampler = value; break;
                case "Schedule type": karras = value.Equals("Karras", StringComparison.OrdinalIgnoreCase); break;
                case "CFG scale": if (TryDouble(value, out var cfg)) record.GuidanceScale = cfg; break;
                case "Seed":
                    if (long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed))
                        record.Seed = seed;
                    break;
                case "Size":
                    var parts = value.Split('x');
                    if (parts.Length == 2
                        && int.TryParse(parts[0], CultureInfo.InvariantCulture, out var w)
                        && int.TryParse(parts[1], CultureInfo.InvariantCulture, out var h))
                        (record.Width, record.Height) = (w, h);
                    break;
                case "Model hash": record.ModelHash = value; break;
                case "Lora hashes": record.Loras = LoraHashes(value); break;
                case "Model": record.ModelPath = value; break;
                case "Denoising strength": if (TryDouble(value, out var strength)) record.Strength = strength; break;
                case "Eta" or "Eta DDIM": if (TryDouble(value, out var eta)) record.Eta = eta; break;
                case "Noise level":
                    if (int.TryParse(value, CultureInfo.InvariantCulture, out var noise)) record.NoiseLevel = noise;
                    break;
                case "TI hashes": record.Embeddings = ParseHashes(value); break;
                case "Version": record.ModuleVersion = value.StartsWith("PSStableDiffusion ", StringComparison.Ordinal)
                    ? value["PSStableDiffusion ".Length..] : value; break;
            }
        }

        // A LoRA the prompt names in a tag is found there again on replay; only the others are applied as parameters.
        if (record.Loras is { } loras)
        {
            var tagged = Lora.LoraPromptTags.TagsIn(record.Prompt)
                .Select(TagName)
                .ToHashSet(StringComparer.OrdinalIgnoreCase);
            record.Loras = loras.Select(l => l with { FromPrompt = tagged.Contains(l.Name) }).ToList();
        }

        // Older infotexts put the schedule into the sampler name ("DPM++ 2M Karras").
        if (sampler.EndsWith(" Karras", StringComparison.Ordinal))
        {
            karras = true;
            sampler = sampler[..^" Karras".Length];
        }
        record.Scheduler = sampler;
        foreach (var (scheduler, name) in SamplerNames)
            if (name == sampler) record.Scheduler = scheduler;
        if (sampler == "DPM++ 2M SDE")
        {
            record.Scheduler = "DPMSolverMultistepScheduler";
            record.SchedulerConfig = new JsonObject { ["algorithm_type"] = "sde-dpmsolver++" };
        }
        if (karras) (record.SchedulerConfig ??= new JsonObject())["use_karras_sigmas"] = true;
        return record;
    }

    /// <summary>A1111's "TI hashes" value: "name: hash, name: hash" (names without ':' or ',').</summary>
    private static string FormatHashes(IReadOnlyDictionary<string, string> embeddings) =>
        string.Join(", ", embeddings.Select(e => $"{Text.Embeddings.EmbeddingUse.RecordName(e.Key)}: {e.Value}"));

    private static Dictionary<string, string>? ParseHashes(string value)
    {
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int colon = entry.LastIndexOf(':');
            if (colon <= 0) continue;
            hashes[entry[..colon].Trim()] = entry[(colon + 1)..].Trim();
        }
        return hashes.Count == 0 ? null : hashes;
    }

    /// <summary>The name of a &lt;lora:name:…&gt; tag.</summary>
    private static string TagName(string tag) => tag[6..^1].Split(':')[0].Trim();

    /// <summary>"name: hash, name2: hash2" (AUTOMATIC1111's Lora hashes) as LoRA uses with names and
    /// hashes only.</summary>
    private static List<Lora.LoraUse>? LoraHashes(string value)
    {
        var uses = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(item => item.Split(':', 2, StringSplitOptions.TrimEntries))
            .Where(pair => pair.Length == 2 && pair[0].Length > 0)
            .Select(pair => new Lora.LoraUse(pair[0], pair[1]))
            .ToList();
        return uses.Count > 0 ? uses : null;
    }

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static bool TryDouble(string value, out double result) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out result);

    /// <summary>Values holding a separator are written as JSON strings, as the web UI does.</summary>
    private static string Quote(string value) =>
        value.IndexOfAny([',', ':', '"', '\n']) >= 0 ? JsonSerializer.Serialize(value) : value;

    private static string Unquote(string value)
    {
        if (value.Length < 2 || value[0] != '"' || value[^1] != '"') return value;
        try
        {
            return JsonSerializer.Deserialize<string>(value) ?? value;
        }
        catch (JsonException)
        {
            return value;
        }
    }

    private static string? ConfigString(JsonObject? config, string key) =>
        config is not null
            && config.TryGetPropertyValue(key, out var node) && node is JsonValue v && v.TryGetValue<string>(out var s)
            ? s : null;

    private static bool ConfigBool(JsonObject? config, string key) =>
        config is not null
            && config.TryGetPropertyValue(key, out var node) && node is JsonValue v && v.TryGetValue<bool>(out var b)
            && b;

    // key: value, where value is a JSON string or runs to the next comma.
    [GeneratedRegex("""\s*([^,:"]+?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)""")]
    private static partial Regex FieldPattern();
}
