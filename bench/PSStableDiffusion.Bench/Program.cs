using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PSStableDiffusion.Bench;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;

const string ResultMarker = "@@RESULT ";
var json = new JsonSerializerOptions { WriteIndented = false, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

if (options.ChildStage is { } childStage)
{
    // Child: one stage, one dtype; the result is the last stdout line. Huge pages must be asked for before
    // libtorch allocates anything.
    if (options.HugePages) TorchMemory.EnableHugePages();
    StageResult result;
    try
    {
        result = Stages.Run(options, childStage, options.DTypes[0]);
    }
    catch (Exception e)
    {
        Console.Error.WriteLine(e);
        result = new StageResult { Stage = childStage, DType = options.DTypes[0], Error = e.GetType().Name + ": " + e.Message, PeakRssBytes = Measure.PeakBytes() };
    }
    Console.Out.WriteLine(ResultMarker + JsonSerializer.Serialize(result, json));
    return result.Error is null ? 0 : 1;
}

// Parent: make (or reuse) the random-weight folders, then run every stage × dtype in a child process.
var started = DateTime.UtcNow;
var results = new List<StageResult>();
string modelFolder;
if (options.ModelFolder is { } given)
{
    modelFolder = given;
}
else
{
    modelFolder = Path.Combine(options.SaveFolder!, "fp32");
    bool needsFolders = options.Stages.Any(s => !BenchOptions.SingleFileStages.Contains(s) && !BenchOptions.InMemoryStages.Contains(s));
    if (needsFolders && !RandomWeights.IsComplete(options.SaveFolder!))
    {
        Measure.Log($"Saving random full-size SD 2.1 768-v weights to {options.SaveFolder} (fp32 and fp16; about 7.8 GB, once) ...");
        var save = RunChild("save", "float32");
        results.Add(save);
        if (save.Error is not null) { Console.Error.WriteLine("Could not save the random weights: " + save.Error); return 1; }
    }
}

if (options.Stages.Any(BenchOptions.SingleFileStages.Contains) && !File.Exists(RandomWeights.SingleFilePath(options.SaveFolder!)))
{
    Measure.Log($"Saving the random SD 2.1 768-v model as one single-file checkpoint to {options.SaveFolder} (fp32, about 5.2 GB, once) ...");
    var save = RunChild("save-single-file", "float32");
    results.Add(save);
    if (save.Error is not null) { Console.Error.WriteLine("Could not save the random single file: " + save.Error); return 1; }
}

foreach (var stage in options.Stages)
{
    if (stage == "load-fp16" && options.ModelFolder is not null)
    {
        Measure.Log("Skipping load-fp16: a given --model folder is measured as it is (load-fp32 loads it).");
        continue;
    }
    var dtypes = stage == "kernels" ? new List<string> { "float32" } : options.DTypes;
    foreach (var dtype in dtypes)
    {
        if (dtype == "bfloat16" && !options.ForceBf16 && !HasBf16Instructions() && stage is not ("kernels" or "load-fp32" or "load-fp16" or "text" or "text-3chunks"))
        {
            var note = "skipped: this CPU has no bf16 instructions (avx512_bf16/amx_bf16) and libtorch's bf16 convolutions " +
                "run at ~1-7 GFLOP/s here (see the kernels stage), so this stage would take many minutes; --force-bf16 runs it";
            Measure.Log($"== {stage} ({dtype}) {note}");
            results.Add(new StageResult { Stage = stage, DType = dtype, Note = note });
            continue;
        }
        results.Add(RunChild(stage, dtype));
    }
}

var document = new JsonObject
{
    ["machine"] = MachineInfo(),
    ["command"] = string.Join(' ', args),
    ["started_utc"] = started.ToString("O"),
    ["duration_s"] = Math.Round((DateTime.UtcNow - started).TotalSeconds, 1),
    ["model"] = options.ModelFolder ?? $"random SD 2.1 768-v weights in {options.SaveFolder}",
    ["results"] = JsonSerializer.SerializeToNode(results, json),
};
var text = document.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.Out.WriteLine(text);
if (options.OutPath is { } outPath)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
    File.WriteAllText(outPath, text);
}
Console.Error.WriteLine();
Console.Error.WriteLine(Table(results));
return results.Any(r => r.Error is not null) ? 1 : 0;

StageResult RunChild(string stage, string dtype)
{
    var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = false, UseShellExecute = false };
    var self = Environment.ProcessPath!;
    start.FileName = self;
    if (Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        start.ArgumentList.Add(typeof(BenchOptions).Assembly.Location);
    foreach (var argument in options.ChildArguments(stage, dtype, modelFolder)) start.ArgumentList.Add(argument);
    Measure.Log($"== {stage} ({dtype})");
    var clock = Stopwatch.StartNew();
    using var child = Process.Start(start)!;
    string? resultLine = null;
    string? line;
    while ((line = child.StandardOutput.ReadLine()) is not null)
    {
        if (line.StartsWith(ResultMarker, StringComparison.Ordinal)) resultLine = line[ResultMarker.Length..];
        else Console.Error.WriteLine(line);
    }
    child.WaitForExit();
    Measure.Log($"   ({clock.Elapsed.TotalSeconds:F1} s in the child)");
    if (resultLine is null)
        return new StageResult { Stage = stage, DType = dtype, Error = $"the child process exited with code {child.ExitCode} and no result" };
    return JsonSerializer.Deserialize<StageResult>(resultLine, json)!;
}

// The engine's own CPU description (what Get-SDDevice and -Precision Auto use); unknown counts as "measure".
static bool HasBf16Instructions() =>
    CpuDescription.Current is { HasAvx512Bf16: null, HasAmxBf16: null } || CpuDescription.Current.HasBFloat16Instructions;

static JsonObject MachineInfo()
{
    string cpu = CpuDescription.Current.Name ?? "unknown";
    var flags = new List<string>();
    if (File.Exists("/proc/cpuinfo"))
    {
        foreach (var line in File.ReadLines("/proc/cpuinfo"))
        {
            if (flags.Count == 0 && line.StartsWith("flags", StringComparison.Ordinal))
            {
                var all = line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
                flags = new[] { "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile", "avx_vnni" }
                    .Select(f => all.Contains(f) ? f : "no " + f).ToList();
            }
        }
    }
    long memory = 0;
    if (File.Exists("/proc/meminfo"))
    {
        var first = File.ReadLines("/proc/meminfo").First(); // MemTotal:  N kB
        memory = long.Parse(first.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
    }
    return new JsonObject
    {
        ["cpu"] = cpu,
        ["flags"] = new JsonArray(flags.Select(f => (JsonNode)f).ToArray()),
        ["processors"] = Environment.ProcessorCount,
        ["memory_bytes"] = memory,
        ["os"] = RuntimeInformation.OSDescription,
        ["dotnet"] = RuntimeInformation.FrameworkDescription,
        ["torchsharp"] = typeof(torch).Assembly.GetName().Version?.ToString(),
        ["libtorch_default_threads"] = TorchThreads.LibTorchDefault,
        ["transparent_hugepage"] = TorchMemory.KernelHugePageMode(),
        ["load_average"] = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : null,
        // The measurement -Precision Auto decides by (measured afresh here, not from the cache).
        ["precision_probe"] = JsonSerializer.SerializeToNode(PrecisionSpeed.Measure()),
    };
}

static string ShortNote(string? note) => note switch
{
    null => "",
    _ when note.StartsWith("skipped", StringComparison.Ordinal) => "skipped: no bf16 instructions (--force-bf16 runs it)",
    _ when note.StartsWith("measured on", StringComparison.Ordinal) => note,
    _ => "",
};

static string Table(List<StageResult> results)
{
    static string Gib(long? bytes) => bytes is { } b ? (b / (double)(1L << 30)).ToString("F2") : "";
    var rows = new List<string[]> { new[] { "stage", "dtype", "median s", "runs", "GFLOP/s", "peak RSS GiB", "run peak GiB", "note" } };
    foreach (var r in results)
    {
        foreach (var item in r.Items ?? new List<StageResult> { r })
        {
            rows.Add(new[]
            {
                item.Stage, item.DType, double.IsNaN(item.MedianS) ? "" : item.MedianS.ToString("F3"), item.RunsS.Count.ToString(),
                item.GflopPerS?.ToString("F0") ?? "", item == r ? Gib(r.PeakRssBytes) : "", item == r ? Gib(r.PeakRssRunBytes) : "",
                item.Error ?? (item.OutputFinite == false ? "NON-FINITE OUTPUT" : ShortNote(item.Note)),
            });
        }
    }
    var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(row => row[c].Length)).ToArray();
    var builder = new StringBuilder();
    foreach (var row in rows)
        builder.AppendLine(string.Join("  ", row.Select((cell, c) => c is >= 2 and <= 6 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).TrimEnd());
    return builder.ToString();
}
