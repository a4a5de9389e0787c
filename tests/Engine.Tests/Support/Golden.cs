using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>Access to the golden fixtures copied under tests/golden (produced with diffusers on PyTorch).</summary>
public static class Golden
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        // The device check's runner (bench/DeviceCheck) may be given the folder; the tests find it above themselves.
        if (Environment.GetEnvironmentVariable("SD_GOLDEN_ROOT") is { Length: > 0 } given) return given;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "tests", "golden");
            if (Directory.Exists(candidate)) return candidate;
            dir = dir.Parent;
        }
        throw new DirectoryNotFoundException("tests/golden not found above " + AppContext.BaseDirectory);
    });

    public static string Root => RootPath.Value;

    public static string Path(params string[] parts) => System.IO.Path.Combine(new[] { Root }.Concat(parts).ToArray());

    public static GoldenCase Case(string name) => new(name);

    /// <summary>
    /// Parses reference JSON written by Python, which may hold the non-standard literals NaN and ±Infinity, with the
    /// engine's own reader of scheduler configs (which meet the same literals in users' files).
    /// </summary>
    public static JsonDocument ParseJson(string text) =>
        JsonDocument.Parse(PSStableDiffusion.Engine.Schedulers.SchedulerConfig.QuoteNonFiniteLiterals(text));

    /// <summary>Asserts max |expected - actual| ≤ tolerance, naming the tensor and the worst difference.</summary>
    public static double AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = torch.NewDisposeScope();
        var diff = (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();
        Assert.True(diff <= tolerance, $"{what}: max abs diff {diff:G4} exceeds tolerance {tolerance:G4}");
        return diff;
    }
}

/// <summary>One pipeline case folder: case.json, io.safetensors and the model.</summary>
public sealed class GoldenCase : IDisposable
{
    private readonly Lazy<SafeTensorsFile> _io;

    public GoldenCase(string name)
    {
        Name = name;
        Folder = Golden.Path(name);
        Json = Golden.ParseJson(File.ReadAllText(System.IO.Path.Combine(Folder, "case.json")));
        _io = new Lazy<SafeTensorsFile>(() => SafeTensorsFile.Open(System.IO.Path.Combine(Folder, "io.safetensors")));
    }

    public string Name { get; }
    public string Folder { get; }
    public string ModelFolder => System.IO.Path.Combine(Folder, "model");
    public JsonDocument Json { get; }
    public SafeTensorsFile Io => _io.Value;

    public Tensor Tensor(string name) => Io.Read(name);

    public bool Has(string name) => Io.Tensors.ContainsKey(name);

    /// <summary>The recommended max-abs tolerance for a float32 implementation (case.json tolerances).</summary>
    public double Tolerance(string name) =>
        Json.RootElement.GetProperty("tolerances").TryGetProperty(name, out var t) ? t.GetProperty("max_abs").GetDouble() : 0.0;

    public double AssertClose(string name, Tensor actual) => Golden.AssertClose(Tensor(name), actual, Tolerance(name), $"{Name}/{name}");

    public void Dispose()
    {
        if (_io.IsValueCreated) _io.Value.Dispose();
        Json.Dispose();
    }
}
