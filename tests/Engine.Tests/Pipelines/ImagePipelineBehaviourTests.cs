using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>Variant checks, input validation, size handling, compositing, tiling and the generation record.</summary>
public class ImagePipelineBehaviourTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    private static GenerationRequest Request(string caseName)
    {
        using var golden = Golden.Case(caseName);
        return ImagePipelineGoldenTests.RequestFor(golden);
    }

    public static TheoryData<string, PipelineKind, string, string> Mismatches => new()
    {
        // model case, pipeline asked for, which inputs to keep (i = image, m = mask, d = depth), variant name
        { "img2img", PipelineKind.Inpaint, "im", "txt2img" },
        { "img2img", PipelineKind.Img2Img, "im", "txt2img" },        // a mask given to a 4-channel model
        { "img2img", PipelineKind.Upscale, "i", "txt2img" },
        { "img2img", PipelineKind.Depth2Img, "id", "txt2img" },
        { "inpaint", PipelineKind.Txt2Img, "", "inpainting" },
        { "inpaint", PipelineKind.Img2Img, "i", "inpainting" },
        { "depth2img", PipelineKind.Img2Img, "i", "depth2img" },
        { "upscale_x4", PipelineKind.Img2Img, "i", "x4-upscaler" },
        { "upscale_x4", PipelineKind.Inpaint, "im", "x4-upscaler" },
    };

    [Theory]
    [MemberData(nameof(Mismatches))]
    public void RequestThatDoesNotFitTheModelNamesVariantAndPipeline(string caseName, PipelineKind kind, string inputs, string variant)
    {
        var model = models.Get(caseName);
        var template = Request(kind == PipelineKind.Img2Img && inputs.Contains('m') ? "inpaint" : caseName);
        var maskSource = Request("inpaint");
        var depthSource = Request("depth2img");
        var request = template with
        {
            InitImage = inputs.Contains('i') ? template.InitImage : null,
            Mask = inputs.Contains('m') ? maskSource.Mask : null,
            DepthMap = inputs.Contains('d') ? depthSource.DepthMap : null,
        };

        var error = Assert.Throws<PipelineMismatchException>(() => StableDiffusionPipeline.Generate(model, request, kind));

        Assert.IsAssignableFrom<InvalidOperationException>(error);
        Assert.Contains(variant, error.Message);
        Assert.Contains(kind.ToString().ToLowerInvariant(), error.Message);
        Assert.Equal(kind, error.Requested);
        Assert.Equal(model.Kind, error.ModelKind);
    }

    [Fact]
    public void InferredKindFollowsTheInputs()
    {
        var baseModel = models.Get("img2img");
        var inpaint = Request("inpaint");
        Assert.Equal(PipelineKind.Img2Img, StableDiffusionPipeline.InferKind(baseModel, Request("img2img")));
        Assert.Equal(PipelineKind.Txt2Img, StableDiffusionPipeline.InferKind(baseModel, Request("img2img") with { InitImage = null }));
        Assert.Equal(PipelineKind.Inpaint, StableDiffusionPipeline.InferKind(baseModel, inpaint));
        Assert.Equal(PipelineKind.Upscale, StableDiffusionPipeline.InferKind(models.Get("upscale_x4"), Request("upscale_x4")));
        // A mask for a base model is inpainting, which the base model refuses.
        var error = Assert.Throws<PipelineMismatchException>(() => StableDiffusionPipeline.Generate(baseModel, inpaint));
        Assert.Contains("txt2img", error.Message);
        Assert.Contains("inpaint", error.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void StrengthOutsideZeroToOneIsRefused(double strength)
    {
        var request = Request("img2img") with { Strength = strength };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            StableDiffusionPipeline.Generate(models.Get("img2img"), request, PipelineKind.Img2Img));
        Assert.Contains("Strength", error.Message);
        Assert.Equal(strength, (double)error.ActualValue!);
    }

    [Fact]
    public void StrengthThatLeavesNoStepIsRefused()
    {
        var request = Request("img2img") with { Strength = 0.05, Steps = 10 };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            StableDiffusionPipeline.Generate(models.Get("img2img"), request, PipelineKind.Img2Img));
        Assert.Contains("no denoising step", error.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(351)]
    public void NoiseLevelOutsideRangeIsRefused(int level)
    {
        var request = Request("upscale_x4") with { NoiseLevel = level };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            StableDiffusionPipeline.Generate(models.Get("upscale_x4"), request, PipelineKind.Upscale));
        Assert.Contains(level.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message);
        Assert.Contains("350", error.Message);
    }

    [Fact]
    public void DepthWithoutDepthMapSaysMidasIsNotAvailable()
    {
        var request = Request("depth2img") with { DepthMap = null };
        var error = Assert.Throws<NotSupportedException>(() =>
            StableDiffusionPipeline.Generate(models.Get("depth2img"), request, PipelineKind.Depth2Img));
        Assert.Contains("MiDaS", error.Message);
        Assert.Contains("depth map", error.Message);
    }

    [Fact]
    public void MissingInputsAreNamed()
    {
        var inpaint = models.Get("inpaint");
        var noMask = Assert.Throws<ArgumentException>(() =>
            StableDiffusionPipeline.Generate(inpaint, Request("inpaint") with { Mask = null }, PipelineKind.Inpaint));
        Assert.Contains("mask", noMask.Message);
        var noImage = Assert.Throws<ArgumentException>(() =>
            StableDiffusionPipeline.Generate(models.Get("img2img"), Request("img2img") with { InitImage = null }, PipelineKind.Img2Img));
        Assert.Contains("InitImage", noImage.Message);
    }

    [Fact]
    public void InputNotAMultipleOfEightIsResizedDownAndLogged()
    {
        var source = SDImage.Load(Golden.Path("img2img", "input_image.png")).Resize(70, 61);
        var logs = new List<string>();
        var request = Request("img2img") with { InitImage = source.ToTensor(), Steps = 2, Strength = 1.0 };

        using var result = StableDiffusionPipeline.Generate(models.Get("img2img"), request, PipelineKind.Img2Img,
            new PipelineObserver { Log = logs.Add });

        Assert.Equal((64, 56), (result.Width, result.Height));
        Assert.Equal(new long[] { 1, 3, 56, 64 }, result.Images.shape);
        Assert.Contains(logs, line => line.Contains("70x61 is not a multiple of 8; using 64x56"));
    }

    [Fact]
    public void MaskOfAnotherSizeIsResizedWithAWarning()
    {
        var mask = GrayImage.Load(Golden.Path("inpaint", "input_mask.png")).ResizeNearest(32, 32);
        var warnings = new List<string>();
        var request = Request("inpaint") with { Mask = mask.ToTensor(normalize: true), Steps = 1 };

        using var result = StableDiffusionPipeline.Generate(models.Get("inpaint"), request, PipelineKind.Inpaint,
            new PipelineObserver { Warn = warnings.Add });

        Assert.Equal((64, 64), (result.Width, result.Height));
        var warning = Assert.Single(warnings);
        Assert.Contains("32x32 mask", warning);
        Assert.Contains("64x64", warning);
    }

    /// <summary>Composite (the default) keeps every unmasked pixel of the source exactly, and the masked ones are
    /// diffusers' (expected.png within 2 levels); the record carries the source and mask hashes.</summary>
    [Fact]
    public void InpaintCompositeKeepsUnmaskedPixelsAndRecordsHashes()
    {
        var golden = Golden.Case("inpaint");
        var source = SDImage.Load(Path.Combine(golden.Folder, "input_image.png"));
        var mask = GrayImage.Load(Path.Combine(golden.Folder, "input_mask.png"));
        var request = ImagePipelineGoldenTests.RequestFor(golden) with { Composite = true };

        var image = Assert.Single(ImageGeneration.Generate(models.Get("inpaint"), request, PipelineKind.Inpaint));

        var expected = SDImage.Load(Path.Combine(golden.Folder, "expected.png"));
        int keptPixels = 0, worstInside = 0;
        for (int p = 0; p < mask.Values.Length; p++)
        {
            bool repaint = mask.Values[p] / 255f >= 0.5f;
            for (int c = 0; c < 3; c++)
            {
                int i = 3 * p + c;
                if (repaint) worstInside = Math.Max(worstInside, Math.Abs(image.Pixels[i] - expected.Pixels[i]));
                else Assert.Equal(source.Pixels[i], image.Pixels[i]);
            }
            if (!repaint) keptPixels++;
        }
        output.WriteLine($"composite: {keptPixels} pixels kept, masked pixels within {worstInside} levels of expected.png");
        Assert.InRange(keptPixels, 1, mask.Values.Length - 1);
        Assert.True(worstInside <= 2, $"masked pixels differ from expected.png by {worstInside} levels");

        var record = image.Record;
        Assert.Equal(PipelineKind.Inpaint, record.PipelineKind);
        Assert.Equal(source.ComputeContentHash(), record.SourceImageHash);
        Assert.Equal(mask.ComputeContentHash(), record.MaskHash);
        Assert.Equal(1.0, record.Strength);
        Assert.Null(record.NoiseLevel);
        golden.Dispose();
    }

    [Fact]
    public void UpscaleRecordCarriesNoiseLevelAndGivenHash()
    {
        var request = Request("upscale_x4") with { SourceImageHash = "given-hash", NoiseLevel = 35, Steps = 1 };
        var image = Assert.Single(ImageGeneration.Generate(models.Get("upscale_x4"), request, PipelineKind.Upscale));
        Assert.Equal((64, 64), (image.Width, image.Height));
        Assert.Equal(35, image.Record.NoiseLevel);
        Assert.Null(image.Record.Strength);
        Assert.Equal("given-hash", image.Record.SourceImageHash);
        Assert.Null(image.Record.MaskHash);
        Assert.Equal(PipelineKind.Upscale, image.Record.PipelineKind);
    }

    /// <summary>Records the shape of every draw (and draws from the seeded generator).</summary>
    private sealed class RecordingNoise(long seed) : INoiseSource, IDisposable
    {
        private readonly GeneratorNoiseSource _inner = new(seed);
        public List<long[]> Shapes { get; } = [];

        public Tensor Randn(long[] shape, ScalarType dtype)
        {
            Shapes.Add(shape.ToArray());
            return _inner.Randn(shape, dtype);
        }

        public void Dispose() => _inner.Dispose();
    }

    [Fact]
    public void Img2ImgBatchEncodesOnceAndDrawsNoiseForTheBatch()
    {
        using var noise = new RecordingNoise(7);
        var request = Request("img2img") with { Count = 2, NoiseOverride = noise };

        using var result = StableDiffusionPipeline.Generate(models.Get("img2img"), request, PipelineKind.Img2Img);

        Assert.Equal(new long[] { 2, 3, 64, 64 }, result.Images.shape);
        Assert.Equal(new long[] { 1, 4, 8, 8 }, noise.Shapes[0]);  // one posterior sample, duplicated for the batch
        Assert.All(noise.Shapes.Skip(1), shape => Assert.Equal(new long[] { 2, 4, 8, 8 }, shape));
        Assert.Equal(2 + 6, noise.Shapes.Count);                   // posterior, start noise, one Euler draw per step (6 steps)
        var difference = (result.Images[0] - result.Images[1]).abs().max().item<float>();
        Assert.True(difference > 0.01f, "the two images of a batch should differ (different start noise)");
    }
}
