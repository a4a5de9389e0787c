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
/// the same device's float32 image instead. The bound then comes from the reference: diffusers_golden.py runs
/// diffusers itself in both precisions on the same device (--reference names its JSON), and the engine may lose at
/// most twice what diffusers loses, plus a small slack (<see cref="ReducedPrecisionBound"/>, the rule the xunit
/// bfloat16 tests use with tests/golden/bf16_reference.json).
/// Without a reference the stated <see cref="ReducedPrecisionMaxLevels"/> and
/// <see cref="ReducedPrecisionMeanLevels"/> apply.
/// </summary>
internal static class GoldenParity
{
    public static readonly string[] Cases = ["txt2img_v", "txt2img_eps_dpmpp", "img2img", "inpaint", "depth2img", "upscale_x4"];

    /// <summary>The float32 image must match diffusers' expected.png within this many levels (as the xunit tests ask).</summary>
    public const int Float32MaxLevels = 2;

    /// <summary>
    /// A float16/bfloat16 image against the float32 one of the same device, when no reference was measured: the largest
    /// and the mean absolute difference in 8-bit levels. Stated, not derived: half-precision rounding compounds over the
    /// denoising steps, and these tiny random models amplify it more than trained ones.
    /// </summary>
    public const int ReducedPrecisionMaxLevels = 48;
    public const double ReducedPrecisionMeanLevels = 3.0;

    public static (JsonObject Result, bool Passed) Run(string device, string precisionName, string? goldenFolder,
        string? referencePath = null)
    {
        var precision = precisionName switch
        {
            "float32" => Precision.Float32,
            "float16" => Precision.Float16,
            "bfloat16" => Precision.BFloat16,
            _ => throw new ArgumentException($"Unknown precision '{precisionName}': float32, float16 or bfloat16."),
        };
        if (goldenFolder is not null) Environment.SetEnvironmentVariable("SD_GOLDEN_ROOT", goldenFolder);
        var reference = referencePath is null ? null : JsonNode.Parse(File.ReadAllText(referencePath))!.AsObject();
        var target = ComputeTarget.Parse(device, precision);
        var cases = new JsonArray();
        bool passed = true;
        foreach (var caseName in Cases)
        {
            using var golden = Golden.Case(caseName);
            var clock = Stopwatch.StartNew();
            using var model = DiffusersFolderLoader.Load(golden.ModelFolder, target);
            double loadSeconds = clock.Elapsed.TotalSeconds;
            // The reduced-precision check compares with this device's float32 model: loaded once for both noises.
            using var float32Model = precision == Precision.Float32
                ? null : DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Parse(device, Precision.Float32));
            foreach (var injectStoredNoise in new[] { true, false })
            {
                var entry = precision == Precision.Float32
                    ? AgainstDiffusers(golden, model, injectStoredNoise)
                    : AgainstFloat32(golden, model, float32Model!, injectStoredNoise, reference);
                entry["case"] = caseName;
                entry["noise"] = injectStoredNoise ? "stored" : "seed";
                entry["load_s"] = loadSeconds;
                passed &= entry["pass"]!.GetValue<bool>();
                Console.Error.WriteLine($"{caseName} ({entry["noise"]}): {(entry["pass"]!.GetValue<bool>() ? "pass" : "FAIL")} {entry.ToJsonString()}");
                cases.Add(entry);
            }
        }
        var result = new JsonObject { ["device"] = target.DeviceName, ["precision"] = target.DTypeName, ["cases"] = cases, ["pass"] = passed };
        if (reference is not null) result["reference"] = reference.DeepClone();
        return (result, passed);
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

    private static JsonObject AgainstFloat32(GoldenCase golden, StableDiffusionModel model, StableDiffusionModel float32Model,
        bool injectStoredNoise, JsonObject? reference)
    {
        var request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? new StoredNoise(golden) : null };
        var clock = Stopwatch.StartNew();
        using var reduced = StableDiffusionPipeline.Generate(model, request);
        double seconds = clock.Elapsed.TotalSeconds;
        var float32Request = GoldenRequests.For(golden) with { NoiseOverride = injectStoredNoise ? new StoredNoise(golden) : null };
        using var float32Result = StableDiffusionPipeline.Generate(float32Model, float32Request);
        var image = SDImage.FromTensorBatch(reduced.Images).Single();
        var (maxLevel, meanLevel) = LevelDifference(SDImage.FromTensorBatch(float32Result.Images).Single(), image);
        var (maxVsPng, meanVsPng) = LevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), image);
        var entry = new JsonObject
        {
            ["image_max_levels_vs_float32"] = maxLevel,
            ["image_mean_levels_vs_float32"] = meanLevel,
            ["image_max_levels_vs_expected_png"] = maxVsPng,
            ["image_mean_levels_vs_expected_png"] = meanVsPng,
            ["generate_s"] = seconds,
        };
        var (boundMax, boundMean) = ((double)ReducedPrecisionMaxLevels, ReducedPrecisionMeanLevels);
        entry["bound_source"] = "stated";
        if (reference?["cases"]?[golden.Name] is JsonObject measured)
        {
            int referenceMax = measured["max_levels"]!.GetValue<int>();
            double referenceMean = measured["mean_levels"]!.GetValue<double>();
            (boundMax, boundMean) = ReducedPrecisionBound.For(referenceMax, referenceMean);
            entry["bound_source"] = $"{ReducedPrecisionBound.Factor} x diffusers' own loss on this device";
            entry["diffusers_max_levels_vs_float32"] = referenceMax;
            entry["diffusers_mean_levels_vs_float32"] = referenceMean;
            AddDistanceToDiffusersImage(entry, reference, golden.Name, image);
        }
        entry["bound_max_levels"] = boundMax;
        entry["bound_mean_levels"] = boundMean;
        entry["pass"] = maxLevel <= boundMax && meanLevel <= boundMean;
        return entry;
    }

    /// <summary>How far the engine's reduced-precision image is from diffusers' one of the same dtype on the same device
    /// (reported, not bounded: both drift from float32 on their own).</summary>
    private static void AddDistanceToDiffusersImage(JsonObject entry, JsonObject reference, string caseName, SDImage image)
    {
        var folder = reference["images"]?.GetValue<string>();
        var dtype = reference["dtype"]?.GetValue<string>();
        var path = folder is null || dtype is null ? null : Path.Combine(folder, $"{caseName}.{dtype}.png");
        if (path is null || !File.Exists(path)) return;
        var (max, mean) = LevelDifference(SDImage.Load(path), image);
        entry["image_max_levels_vs_diffusers_same_dtype"] = max;
        entry["image_mean_levels_vs_diffusers_same_dtype"] = mean;
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

    private static (int Max, double Mean) LevelDifference(SDImage expected, SDImage actual) =>
        (expected.Width, expected.Height) == (actual.Width, actual.Height)
            ? ReducedPrecisionBound.Levels(expected.Pixels, actual.Pixels)
            : (int.MaxValue, double.PositiveInfinity);
}
