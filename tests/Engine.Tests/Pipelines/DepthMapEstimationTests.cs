using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Models.Dpt;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// Get-SDDepthMap's engine side against tests/golden/depth_map (transformers' DepthEstimationPipeline on the tiny
/// DPT-Hybrid; MiDaS' write_depth formula): the prediction resized to the image, its 16-bit levels raw and normalised,
/// the 16-bit PNG round trip, and the edge cases of issue 15 (a constant image, 1x1, 16384 wide).
/// </summary>
public sealed class DepthMapEstimationTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly DepthEstimator _estimator = DepthEstimator.Load(DPTGoldenTests.Folder, ScalarType.Float32, torch.CPU);

    public DepthMapEstimationTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _estimator.Dispose();

    private static SDImage Input(int n) => SDImage.Load(Path.Combine(DPTGoldenTests.Folder, $"input{n}.png"));

    private static int[] Ints(Tensor t) => t.to(ScalarType.Int32).data<int>().ToArray();

    /// <summary>The level tolerance that the float tolerance of the resized depth implies for a map spanning
    /// <paramref name="range"/>: the value and both ends of the scale may each move by the tolerance, and truncation
    /// may then cross one more level.</summary>
    private static int LevelTolerance(double tolerance, double range, int maxLevel) => (int)Math.Ceiling(maxLevel * 4 * tolerance / range) + 1;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void TheResizedPredictionAndItsLevelsMatchTheReference(int n)
    {
        using var golden = Golden.Case("depth_map");
        using var scope = NewDisposeScope();
        var image = Input(n);
        var depth = _estimator.PredictAt(image, image.Height, image.Width); // [1, H, W]
        var diff = golden.AssertClose($"depth{n}", depth);
        var tolerance = golden.Tolerance($"depth{n}");
        _output.WriteLine($"depth{n} ({image.Width}x{image.Height}): max abs diff {diff:G3} (tolerance {tolerance:G3})");

        var values = depth.data<float>().ToArray();
        double min = values.Min(), max = values.Max();
        foreach (var (normalize, name, range) in new[] { (false, "depth16_raw", max), (true, "depth16_normalized", max - min) })
        {
            var (levels, _, _) = DepthMapEstimation.Quantize(values, normalize, DepthMapEstimation.MaxLevel);
            var expected = Ints(golden.Tensor($"{name}{n}"));
            int worst = levels.Zip(expected, (a, b) => Math.Abs(a - b)).Max();
            int allowed = LevelTolerance(tolerance, range, DepthMapEstimation.MaxLevel);
            _output.WriteLine($"{name}{n}: max {worst} level(s) of 65535 (allowed {allowed})");
            Assert.True(worst <= allowed, $"{name}{n}: {worst} levels off (allowed {allowed})");
        }

        // At 8 bits the raw scaling is the reference pipeline's own "depth" image (where the overshoot is not negative:
        // numpy's cast wraps there, where ours clips to 0).
        var (bytes, _, _) = DepthMapEstimation.Quantize(values, normalize: false, 255);
        var pipeline = Ints(golden.Tensor($"pipeline_depth8_{n}"));
        var reference = golden.Tensor($"depth{n}").data<float>().ToArray();
        var compared = Enumerable.Range(0, bytes.Length).Where(i => reference[i] >= 0).ToList();
        Assert.True(compared.Count > bytes.Length * 0.9);
        int worst8 = compared.Max(i => Math.Abs(bytes[i] - pipeline[i]));
        int allowed8 = LevelTolerance(tolerance, max, 255);
        _output.WriteLine($"pipeline_depth8_{n}: max {worst8} level(s) of 255 over {compared.Count} pixels (allowed {allowed8})");
        Assert.True(worst8 <= allowed8);
    }

    [Fact]
    public void TheDepthMapImageHoldsTheLevelsAndTheRecordSaysHowTheyWereMade()
    {
        var image = Input(0);
        var logs = new List<string>();
        var map = DepthMapEstimation.Estimate(_estimator, image, normalize: true, "/models/depth", logs.Add);
        Assert.NotNull(map.Gray16);
        Assert.Equal((image.Width, image.Height), (map.Width, map.Height));
        using var golden = Golden.Case("depth_map");
        var expected = Ints(golden.Tensor("depth16_normalized0"));
        Assert.True(map.Gray16!.Values.Zip(expected, (a, b) => Math.Abs(a - b)).Max() <= LevelTolerance(golden.Tolerance("depth0"), 4, 65535));
        Assert.Equal(0, map.Gray16.Values.Min());
        Assert.Equal(65535, map.Gray16.Values.Max());

        var record = map.Record;
        Assert.Equal("estimated (DPT-Hybrid)", record.Depth);
        Assert.Equal(_estimator.Hash, record.DepthEstimatorHash);
        Assert.Equal(image.ComputeContentHash(), record.SourceImageHash);
        Assert.True(record.DepthNormalized);
        using var depth = _estimator.PredictAt(image, image.Height, image.Width);
        Assert.Equal(new double[] { depth.min().item<float>(), depth.max().item<float>() }, record.DepthRange);
        Assert.Equal("/models/depth", record.ModelPath);
        Assert.Contains(logs, l => l.Contains("96x60 depth", StringComparison.Ordinal));

        var raw = DepthMapEstimation.Estimate(_estimator, image, normalize: false, null);
        Assert.False(raw.Record.DepthNormalized);
        Assert.Equal(0, raw.Record.DepthRange![0]);
        Assert.Equal(record.DepthRange![1], raw.Record.DepthRange[1]);
    }

    [Fact]
    public void The16BitPngKeepsEveryLevelAndTheRecordAndADepthMapReadsItBack()
    {
        var map = DepthMapEstimation.Estimate(_estimator, Input(2), normalize: false, null);
        using var temp = new TempFolder("psd-depth-");
        var path = temp.Combine("depth.png");
        map.Save(path);
        var header = File.ReadAllBytes(path)[16..26];
        Assert.Equal(16, header[8]);  // bit depth
        Assert.Equal(0, header[9]);   // grayscale
        var asDepthMap = GrayImage.Load(path); // what -DepthMap reads
        Assert.Equal(16, asDepthMap.BitDepth);
        Assert.Equal(map.Gray16!.Values, asDepthMap.Values);
        var imported = SDImage.Load(path); // Import-SDImage, and a deserialized image
        Assert.Equal(map.Gray16.Values, imported.Gray16!.Values);
        Assert.Equal(map.Pixels, imported.Pixels);
        Assert.Equal(map.Record.ToJson(), imported.Record.ToJson());
        Assert.Same(imported.Gray16, imported.ToGray());
        var reencoded = ImageCodec.Decode(ImageCodec.EncodePng(imported));
        Assert.Equal(map.Gray16.Values, reencoded.Gray16!.Values);
    }

    [Fact]
    public void AFlatPredictionGivesAFlatMapNotNaN()
    {
        var constant = Enumerable.Repeat(1.25f, 12).ToArray();
        var (normalized, low, high) = DepthMapEstimation.Quantize(constant, normalize: true, 65535);
        Assert.All(normalized, v => Assert.Equal(0, v));
        Assert.Equal(low, high);
        var (raw, rawLow, rawHigh) = DepthMapEstimation.Quantize(constant, normalize: false, 65535);
        Assert.All(raw, v => Assert.Equal(65535, v));
        Assert.Equal((0.0, 1.25), (rawLow, rawHigh));
        var (zeros, _, zeroHigh) = DepthMapEstimation.Quantize(new float[12], normalize: false, 65535);
        Assert.All(zeros, v => Assert.Equal(0, v));
        Assert.Equal(0, zeroHigh);
    }

    [Fact]
    public void AConstantImageGivesAMapOrAFlatMapWithAWarning()
    {
        var gray = new SDImage(48, 32, Enumerable.Repeat((byte)128, 48 * 32 * 3).ToArray());
        var warnings = new List<string>();
        var map = DepthMapEstimation.Estimate(_estimator, gray, normalize: true, null, warn: warnings.Add);
        var values = map.Gray16!.Values;
        // The network sees padding at the borders, so a uniform image need not give a uniform depth; when it does, the
        // map is flat and says so.
        if (values.Distinct().Count() == 1) Assert.Single(warnings);
        else Assert.Empty(warnings);
        _output.WriteLine($"constant image: {values.Distinct().Count()} distinct levels, range {string.Join(" .. ", map.Record.DepthRange!)}");
    }

    [Fact]
    public void A1x1ImageAndA16384WideImageGiveMapsOfTheirSize()
    {
        var tiny = DepthMapEstimation.Estimate(_estimator, new SDImage(1, 1, [200, 10, 30]), normalize: true, null);
        Assert.Equal((1, 1), (tiny.Width, tiny.Height));
        Assert.Equal(0, Assert.Single(tiny.Gray16!.Values)); // one value: a flat normalised map

        var pixels = new byte[16384 * 16 * 3];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 7 % 251);
        var wide = DepthMapEstimation.Estimate(_estimator, new SDImage(16384, 16, pixels), normalize: false, null);
        Assert.Equal((16384, 16), (wide.Width, wide.Height));
        Assert.Equal(65535, wide.Gray16!.Values.Max());
        Assert.Equal(0.0, wide.Record.DepthRange![0]);
    }
}
