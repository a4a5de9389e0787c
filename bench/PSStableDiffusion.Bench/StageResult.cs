using System.Text.Json.Serialization;

namespace PSStableDiffusion.Bench;

/// <summary>One measured stage in one dtype (what a child process reports).</summary>
internal sealed class StageResult
{
    [JsonPropertyName("stage")] public required string Stage { get; init; }
    [JsonPropertyName("dtype")] public required string DType { get; init; }
    [JsonPropertyName("runs_s")] public List<double> RunsS { get; set; } = new();
    [JsonPropertyName("median_s")] public double MedianS { get; set; } = double.NaN;
    [JsonPropertyName("flop")] public double? Flop { get; set; }
    [JsonPropertyName("gflop_per_s")] public double? GflopPerS { get; set; }
    /// <summary>Peak RSS of the whole child process (model load included).</summary>
    [JsonPropertyName("peak_rss_bytes")] public long PeakRssBytes { get; set; }
    /// <summary>Peak RSS during the timed runs only (mark reset after the model was loaded); null where not supported.</summary>
    [JsonPropertyName("peak_rss_run_bytes")] public long? PeakRssRunBytes { get; set; }
    [JsonPropertyName("threads")] public int Threads { get; set; }
    [JsonPropertyName("libtorch_default_threads")] public int LibTorchDefaultThreads { get; set; }
    [JsonPropertyName("output_finite")] public bool? OutputFinite { get; set; }
    [JsonPropertyName("output_std")] public double? OutputStd { get; set; }
    [JsonPropertyName("details")] public Dictionary<string, double> Details { get; set; } = new();
    [JsonPropertyName("note")] public string? Note { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
    /// <summary>Sub-results of a stage that measures several things (kernels).</summary>
    [JsonPropertyName("items")] public List<StageResult>? Items { get; set; }
}
