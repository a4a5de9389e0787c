using System.Text.Json;
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
