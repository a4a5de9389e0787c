using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// A diffusers <c>scheduler_config.json</c>, the union of the keys every scheduler here understands. A null property
/// means "not given": each scheduler fills it with its own diffusers default and ignores the keys it does not know,
/// which is diffusers' <c>from_config</c> behaviour (so a DDIM config can build an Euler scheduler).
/// </summary>
public sealed record SchedulerConfig
{
    [JsonPropertyName("_class_name")] public string? ClassName { get; init; }
    [JsonPropertyName("num_train_timesteps")] public int? NumTrainTimesteps { get; init; }
    [JsonPropertyName("beta_start")] public double? BetaStart { get; init; }
    [JsonPropertyName("beta_end")] public double? BetaEnd { get; init; }
    /// <summary>linear, scaled_linear or squaredcos_cap_v2.</summary>
    [JsonPropertyName("beta_schedule")] public string? BetaSchedule { get; init; }
    [JsonPropertyName("trained_betas")] public double[]? TrainedBetas { get; init; }
    /// <summary>epsilon, v_prediction or sample.</summary>
    [JsonPropertyName("prediction_type")] public string? PredictionType { get; init; }
    /// <summary>leading, trailing or linspace.</summary>
    [JsonPropertyName("timestep_spacing")] public string? TimestepSpacing { get; init; }
    [JsonPropertyName("steps_offset")] public int? StepsOffset { get; init; }
    [JsonPropertyName("set_alpha_to_one")] public bool? SetAlphaToOne { get; init; }
    [JsonPropertyName("skip_prk_steps")] public bool? SkipPrkSteps { get; init; }
    [JsonPropertyName("clip_sample")] public bool? ClipSample { get; init; }
    [JsonPropertyName("clip_sample_range")] public double? ClipSampleRange { get; init; }
    [JsonPropertyName("thresholding")] public bool? Thresholding { get; init; }
    [JsonPropertyName("dynamic_thresholding_ratio")] public double? DynamicThresholdingRatio { get; init; }
    [JsonPropertyName("sample_max_value")] public double? SampleMaxValue { get; init; }
    [JsonPropertyName("rescale_betas_zero_snr")] public bool? RescaleBetasZeroSnr { get; init; }
    /// <summary>DDPM: fixed_small, fixed_small_log, fixed_large, fixed_large_log, learned, learned_range.</summary>
    [JsonPropertyName("variance_type")] public string? VarianceType { get; init; }
    [JsonPropertyName("use_karras_sigmas")] public bool? UseKarrasSigmas { get; init; }
    [JsonPropertyName("sigma_min")] public double? SigmaMin { get; init; }
    [JsonPropertyName("sigma_max")] public double? SigmaMax { get; init; }
    /// <summary>Euler: linear or log_linear.</summary>
    [JsonPropertyName("interpolation_type")] public string? InterpolationType { get; init; }
    /// <summary>Euler: discrete or continuous.</summary>
    [JsonPropertyName("timestep_type")] public string? TimestepType { get; init; }
    /// <summary>zero or sigma_min.</summary>
    [JsonPropertyName("final_sigmas_type")] public string? FinalSigmasType { get; init; }
    [JsonPropertyName("solver_order")] public int? SolverOrder { get; init; }
    /// <summary>DPM-Solver: dpmsolver++, sde-dpmsolver++, dpmsolver, sde-dpmsolver; DEIS: deis.</summary>
    [JsonPropertyName("algorithm_type")] public string? AlgorithmType { get; init; }
    /// <summary>DPM-Solver: midpoint or heun; DEIS: logrho; UniPC: bh1 or bh2.</summary>
    [JsonPropertyName("solver_type")] public string? SolverType { get; init; }
    [JsonPropertyName("lower_order_final")] public bool? LowerOrderFinal { get; init; }
    [JsonPropertyName("euler_at_final")] public bool? EulerAtFinal { get; init; }
    [JsonPropertyName("use_lu_lambdas")] public bool? UseLuLambdas { get; init; }
    [JsonPropertyName("lambda_min_clipped")] public double? LambdaMinClipped { get; init; }
    [JsonPropertyName("predict_x0")] public bool? PredictX0 { get; init; }
    [JsonPropertyName("disable_corrector")] public int[]? DisableCorrector { get; init; }

    /// <summary>
    /// DDIM's <c>eta</c> (weight of the noise added per step). Not a diffusers config key (diffusers passes it to
    /// <c>step</c>); kept here so that a caller can override it like any other option.
    /// </summary>
    [JsonPropertyName("eta")] public double? Eta { get; init; }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals | JsonNumberHandling.AllowReadingFromString,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    private static readonly PropertyInfo[] Properties = typeof(SchedulerConfig).GetProperties(
        BindingFlags.Public | BindingFlags.Instance);

    /// <summary>Parses the text of a <c>scheduler_config.json</c>; unknown keys are ignored.</summary>
    public static SchedulerConfig Parse(string json)
    {
        try
        {
            var text = QuoteNonFiniteLiterals(json);
            var config = JsonSerializer.Deserialize<SchedulerConfig>(text, JsonOptions)
                ?? throw new JsonException("the scheduler config is the JSON literal null");
            // diffusers records which values were defaults ("_use_default_values") and drops them in from_config, so
            // the class being built applies its own defaults there.
            using var document = JsonDocument.Parse(
                text,
                new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            if (document.RootElement.TryGetProperty("_use_default_values", out var defaulted)
                && defaulted.ValueKind == JsonValueKind.Array)
            {
                var dropped = defaulted.EnumerateArray()
                    .Where(e => e.ValueKind == JsonValueKind.String)
                    .Select(e => e.GetString()!)
                    .ToHashSet(StringComparer.Ordinal);
                config = config.Only(
                    config.GivenKeys().Where(k => !dropped.Contains(k)).ToHashSet(StringComparer.Ordinal));
            }
            return config;
        }
        catch (JsonException e)
        {
            throw new FormatException($"Invalid scheduler config JSON: {e.Message}", e);
        }
    }

    /// <summary>Reads a <c>scheduler_config.json</c> file (or the file of that name inside a folder).</summary>
    public static SchedulerConfig Load(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, "scheduler_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"Scheduler config not found: {path}", path);
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (FormatException e)
        {
            throw new FormatException($"Invalid scheduler config '{path}': {e.Message}", e);
        }
    }

    /// <summary>This config with every non-null value of <paramref name="overrides"/> written over it.</summary>
    public SchedulerConfig Merge(SchedulerConfig? overrides)
    {
        if (overrides is null) return this;
        var result = this with { };
        foreach (var property in Properties)
        {
            var value = property.GetValue(overrides);
            if (value is not null) property.SetValue(result, value);
        }
        return result;
    }

    /// <summary>A copy holding only the given JSON keys (the others become null, i.e. "not given").</summary>
    public SchedulerConfig Only(IReadOnlySet<string> jsonKeys)
    {
        var result = this with { };
        foreach (var property in Properties)
            if (!jsonKeys.Contains(JsonKey(property))) property.SetValue(result, null);
        return result;
    }

    /// <summary>The JSON keys that hold a value in this config.</summary>
    public IReadOnlySet<string> GivenKeys() =>
        Properties.Where(p => p.GetValue(this) is not null).Select(JsonKey).ToHashSet(StringComparer.Ordinal);

    /// <summary>The given keys and their values, in JSON key order (for display).</summary>
    public IReadOnlyDictionary<string, object> ToDictionary() =>
        new SortedDictionary<string, object>(
            Properties.Select(p => (Key: JsonKey(p), Value: p.GetValue(this)))
                .Where(kv => kv.Value is not null)
                .ToDictionary(kv => kv.Key, kv => kv.Value!), StringComparer.Ordinal);

    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions(JsonOptions)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    });

    private static string JsonKey(PropertyInfo property) =>
        property.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name;

    /// <summary>
    /// Python's json writes the bare tokens NaN, Infinity and -Infinity (diffusers saves
    /// <c>"lambda_min_clipped": -Infinity</c>), which System.Text.Json rejects; quote them outside strings so the
    /// named-literal number handling reads them.
    /// </summary>
    internal static string QuoteNonFiniteLiterals(string json)
    {
        var output = new StringBuilder(json.Length + 16);
        var inString = false;
        for (var i = 0; i < json.Length; i++)
        {
            var c = json[i];
            if (inString)
            {
                output.Append(c);
                if (c == '\\' && i + 1 < json.Length) output.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; output.Append(c); continue; }
            var token = MatchAt(json, i, "-Infinity") ?? MatchAt(json, i, "Infinity") ?? MatchAt(json, i, "NaN");
            if (token is not null)
            {
                output.Append('"').Append(token).Append('"');
                i += token.Length - 1;
                continue;
            }
            output.Append(c);
        }
        return output.ToString();
    }

    private static string? MatchAt(string text, int index, string token) =>
        string.CompareOrdinal(text, index, token, 0, token.Length) == 0 ? token : null;
}
