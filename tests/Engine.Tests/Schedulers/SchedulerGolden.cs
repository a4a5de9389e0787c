using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>tests/golden/schedulers.json + schedulers.safetensors (diffusers 0.29.2 reference rollouts).</summary>
internal static class SchedulerGolden
{
    private static readonly Lazy<JsonDocument> JsonValue = new(() =>
        JsonDocument.Parse(SchedulerConfig.QuoteNonFiniteLiterals(File.ReadAllText(Golden.Path("schedulers.json")))));

    private static readonly Lazy<SafeTensorsFile> TensorsValue = new(() => SafeTensorsFile.Open(Golden.Path("schedulers.safetensors")));

    private static readonly object TensorLock = new();

    public static JsonElement Root => JsonValue.Value.RootElement;

    public static IEnumerable<JsonElement> Runs => Root.GetProperty("runs").EnumerateArray();

    public static JsonElement Run(string key) => Runs.Single(r => r.GetProperty("key").GetString() == key);

    public static bool HasTensor(string name) => TensorsValue.Value.Tensors.ContainsKey(name);

    public static Tensor Tensor(string name)
    {
        lock (TensorLock) return TensorsValue.Value.Read(name);
    }

    /// <summary>The run's config object (as saved by diffusers) parsed the way a scheduler_config.json is.</summary>
    public static SchedulerConfig Config(JsonElement run) => SchedulerConfig.Parse(run.GetProperty("config").GetRawText());

    /// <summary>The run's config plus the step arguments it used (eta).</summary>
    public static SchedulerBase Build(JsonElement run)
    {
        var overrides = run.TryGetProperty("eta", out var eta) && eta.ValueKind == JsonValueKind.Number
            ? new SchedulerConfig { Eta = eta.GetDouble() }
            : null;
        return SchedulerRegistry.Create(run.GetProperty("class").GetString()!, Config(run), overrides);
    }

    /// <summary>model_formula: model_output = 0.9 * x_in - 0.05 * (t / 1000).</summary>
    public static Tensor ModelFormula(Tensor xIn, double t) => 0.9 * xIn.ScalarSafe() - 0.05 * (t / 1000);

    /// <summary>
    /// Element-wise |expected - actual| &lt;= ulps float32 units in the last place of expected: float32 values that may differ in the last bits
    /// (libtorch 2.10 rounds the training alphas_cumprod up to a few ulps off PyTorch 1.13, and the sigmas inherit it).
    /// Returns the largest difference in ulps.
    /// </summary>
    public static double AssertUlpClose(Tensor expected, Tensor actual, double ulps, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = torch.NewDisposeScope();
        var e = expected.to(ScalarType.Float64);
        var a = actual.to(ScalarType.Float64);
        var exponent = e.abs().ScalarSafe().ClampMin(1e-30).Tensor.log2().floor().ScalarSafe() - 23;
        var scale = torch.pow(2.0, exponent); // one float32 ulp of each expected value
        var worst = ((e - a).abs() / scale).max().ToDouble();
        Assert.True(worst <= ulps, $"{what}: differs by {worst:G3} float32 ulps (allowed {ulps})");
        return worst;
    }

    public static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(e => e.GetDouble()).ToArray();
}
