using System.Diagnostics;
using System.Text.Json.Nodes;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using static TorchSharp.torch;

namespace PSStableDiffusion.DeviceCheck;

/// <summary>
/// The six golden pipeline cases on one device and precision, checked as tests/Engine.Tests checks them on the CPU
/// (PipelineGoldenTests, ImagePipelineGoldenTests): in float32 every intermediate diffusers stored within its golden
/// tolerance and the image within 2 levels of expected.png, once with the stored noise injected and once from the
/// seed alone (the CPU generator draws the noise on every device). In float16 or bfloat16 the image is compared with
/// the same device's float32 image instead, within <see cref="ReducedPrecisionMaxLevels"/> and
/// <see cref="ReducedPrecisionMeanLevels"/>.
/// </summary>
internal static class GoldenParity
{
    public static readonly string[] Cases = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"];

    /// <summary>The float32 image must match diffusers' expected.png within this many levels (as the xunit tests ask).</summary>
    public const int Float32MaxLevels = 2;

    /// <summary>
    /// A float16/bfloat16 image against the float32 one of the same device: the largest and the mean absolute
    /// difference in 8-bit levels. Stated for the device check, not derived from a reference: half-precision rounding
    /// compounds over the denoising steps, and these tiny random models amplify it more than trained ones.
    /// </summary>
    public const int ReducedPrecisionMaxLevels = 48;
    public const double ReducedPrecisionMeanLevels = 3.0;

    public static (JsonObject Result, bool Passed) Run(string device, string precisionName, string? goldenFolder)
    {
        var precision = precisionName switch
        {
            "float32" => Precision.Float32,
            "float16" => Precision.Float16,
            "bfloat16" => Precision.BFloat16,
            _ => throw new ArgumentException($"Unknown precision '{precisionName}': float32, float16 or bfloat16."),
        };
        if (goldenFolder is not null) Environment.SetEnvironmentVariable("SD_GOLDEN_ROOT", goldenFolder);
        var target = ComputeTarget.Parse(device, precision);
        var cases = new JsonArray();
        bool passed = true;
        foreach (var caseName in Cases)
        {
            using var golden = Golden.Case(caseName);
            var clock = Stopwatch.StartNew();
            using var model = DiffusersFolderLoader.Load(golden.ModelFolder, target);
            double loadSeconds = clock.Elapsed.TotalSeconds;
            foreach (var injectStoredNoise in new[] { true, false })
            {
                var entry = precision == Precision.Float32
                    ? AgainstDiffusers(golden, model, injectStoredNoise)
                    : AgainstFloat32(golden, model, device, injectStoredNoise);
                entry["case"] = caseName;
                entry["noise"] = injectStoredNoise ? "stored" : "seed";
                entry["load_s"] = loadSeconds;
                passed &= entry["pass"]!.GetValue<bool>();
                Console.Error.WriteLine($"{caseName} ({entry["noise"]}): {(entry["pass"]!.GetValue<bool>() ? "pass" : "FAIL")} {entry.ToJsonString()}");
                cases.Add(entry);
            }
        }
        return (new JsonObject { ["device"] = target.DeviceName, ["precision"] = target.DTypeName, ["cases"] = cases, ["pass"] = passed }, passed);
    }

    private static JsonObject AgainstDiffusers(GoldenCase golden, StableDiffusionModel model, bool injectStoredNoise)
    {
        bool imageTask = !golden.Name.StartsWith("txt2img", StringComparison.Ordinal);
        var stored = new StoredNoise(golden);
        int compared = 0;
        double worstRatio = 0;
        string worstName = "", failure = "";
        var observer = new PipelineObserver
        {
            Inspect = (name, actual) =>
            {
                if (!golden.Has(name) || failure.Length > 0) return;
                using var expected = golden.Tensor(name);
                using var onCpu = actual.cpu();
                var tolerance = imageTask ? ToleranceWithFloor(golden, name, expected) : golden.Tolerance(name);
                double diff = MaxAbsDiff(expected, onCpu);
                compared++;
                if (diff > tolerance) failure = $"{name}: max abs diff {diff:G4} exceeds tolerance {tolerance:G4}";
                else if (tolerance > 0 && diff / tolerance > worstRatio) (worstRatio, worstName) = (diff / tolerance, name);
            },
        };
        var request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? stored : null };
        var clock = Stopwatch.StartNew();
        using var result = StableDiffusionPipeline.Generate(model, request, observer);
        double seconds = clock.Elapsed.TotalSeconds;
        var image = SDImage.FromTensorBatch(result.Images).Single();
        var expectedImage = SDImage.Load(Path.Combine(golden.Folder, "expected.png"));
        var (maxLevel, meanLevel) = LevelDifference(expectedImage, image);
        bool pass = failure.Length == 0 && compared > 0 && maxLevel <= Float32MaxLevels;
        return new JsonObject
        {
            ["tensors_compared"] = compared,
            ["worst_diff_over_tolerance"] = worstRatio,
            ["worst_tensor"] = worstName,
            ["failure"] = failure.Length > 0 ? failure : null,
            ["image_max_levels_vs_expected_png"] = maxLevel,
            ["image_mean_levels_vs_expected_png"] = meanLevel,
            ["generate_s"] = seconds,
            ["pass"] = pass,
        };
    }

    private static JsonObject AgainstFloat32(GoldenCase golden, StableDiffusionModel model, string device, bool injectStoredNoise)
    {
        var request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? new StoredNoise(golden) : null };
        var clock = Stopwatch.StartNew();
        using var reduced = StableDiffusionPipeline.Generate(model, request);
        double seconds = clock.Elapsed.TotalSeconds;
        using var float32Model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Parse(device, Precision.Float32));
        var float32Request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? new StoredNoise(golden) : null };
        using var reference = StableDiffusionPipeline.Generate(float32Model, float32Request);
        var (maxLevel, meanLevel) = LevelDifference(SDImage.FromTensorBatch(reference.Images).Single(), SDImage.FromTensorBatch(reduced.Images).Single());
        var (maxVsPng, meanVsPng) = LevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), SDImage.FromTensorBatch(reduced.Images).Single());
        return new JsonObject
        {
            ["image_max_levels_vs_float32"] = maxLevel,
            ["image_mean_levels_vs_float32"] = meanLevel,
            ["image_max_levels_vs_expected_png"] = maxVsPng,
            ["image_mean_levels_vs_expected_png"] = meanVsPng,
            ["bound_max_levels"] = ReducedPrecisionMaxLevels,
            ["bound_mean_levels"] = ReducedPrecisionMeanLevels,
            ["generate_s"] = seconds,
            ["pass"] = maxLevel <= ReducedPrecisionMaxLevels && meanLevel <= ReducedPrecisionMeanLevels,
        };
    }

    /// <summary>ImagePipelineGoldenTests.ToleranceWithFloor: case.json's tolerance, raised to the floor the golden README states for float tensors.</summary>
    private static double ToleranceWithFloor(GoldenCase golden, string name, Tensor expected)
    {
        var tolerance = golden.Tolerance(name);
        if (tolerance == 0 || !expected.is_floating_point()) return tolerance;
        var magnitude = expected.numel() == 0 ? 0 : expected.abs().max().to(ScalarType.Float64).item<double>();
        return Math.Max(tolerance, 1e-5 * Math.Max(1, magnitude));
    }

    private static double MaxAbsDiff(Tensor expected, Tensor actual)
    {
        if (!expected.shape.SequenceEqual(actual.shape)) return double.PositiveInfinity;
        using var scope = NewDisposeScope();
        return expected.numel() == 0 ? 0 : (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();
    }

    private static (int Max, double Mean) LevelDifference(SDImage expected, SDImage actual)
    {
        if ((expected.Width, expected.Height) != (actual.Width, actual.Height)) return (int.MaxValue, double.PositiveInfinity);
        var differences = expected.Pixels.Zip(actual.Pixels, (a, b) => Math.Abs(a - b)).ToList();
        return (differences.Max(), differences.Average());
    }
}
