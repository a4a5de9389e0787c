using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
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
        return GoldenRequests.For(golden);
    }

    /// <summary>The request of <paramref name="caseName"/> with its task input changed by <paramref name="change"/>.</summary>
    private static GenerationRequest Request<T>(string caseName, Func<T, T> change) where T : TaskInput
    {
        var request = Request(caseName);
        return request with { Input = change((T)request.Input) };
    }

    /// <summary>A golden case's input of each kind (text-to-image has none).</summary>
    private static TaskInput InputOf(PipelineKind kind) => kind switch
    {
        PipelineKind.Txt2Img => new TextToImageInput(),
        PipelineKind.Img2Img => Request("img2img").Input,
        PipelineKind.Inpaint => Request("inpaint").Input,
        PipelineKind.Depth2Img => Request("depth2img").Input,
        _ => Request("upscale_x4").Input,
    };

    public static TheoryData<string, PipelineKind, string> Mismatches => new()
    {
        // model case, task input given, the model's kind as users see it
        { "img2img", PipelineKind.Inpaint, "txt2img" },
        { "img2img", PipelineKind.Upscale, "txt2img" },
        { "img2img", PipelineKind.Depth2Img, "txt2img" },
        { "inpaint", PipelineKind.Txt2Img, "inpainting" },
        { "inpaint", PipelineKind.Img2Img, "inpainting" },
        { "depth2img", PipelineKind.Txt2Img, "depth2img" },
        { "upscale_x4", PipelineKind.Img2Img, "x4-upscaler" },
        { "upscale_x4", PipelineKind.Inpaint, "x4-upscaler" },
    };

    [Theory]
    [MemberData(nameof(Mismatches))]
    public void RequestThatDoesNotFitTheModelNamesKindAndPipeline(string caseName, PipelineKind kind, string modelKind)
    {
        var model = models.Get(caseName);
        var request = Request(caseName) with { Input = InputOf(kind) };

        var error = Assert.Throws<PipelineMismatchException>(() => StableDiffusionPipeline.Generate(model, request));

        Assert.IsAssignableFrom<InvalidOperationException>(error);
        Assert.Contains(modelKind, error.Message);
        Assert.Contains(kind.ToString().ToLowerInvariant(), error.Message);
        Assert.Equal(kind, error.Requested);
        Assert.Equal(model.Kind, error.ModelKind);
    }

    [Fact]
    public void TheInputNamesTheTaskAndAnImageOnADepthModelIsDepthToImage()
    {
        var baseModel = models.Get("img2img");
        Assert.Equal(PipelineKind.Img2Img, StableDiffusionPipeline.KindOf(baseModel, Request("img2img")));
        Assert.Equal(PipelineKind.Txt2Img, StableDiffusionPipeline.KindOf(baseModel, Request("img2img") with { Input = new TextToImageInput() }));
        Assert.Equal(PipelineKind.Inpaint, StableDiffusionPipeline.KindOf(models.Get("inpaint"), Request("inpaint")));
        Assert.Equal(PipelineKind.Upscale, StableDiffusionPipeline.KindOf(models.Get("upscale_x4"), Request("upscale_x4")));
        Assert.Equal(PipelineKind.Depth2Img, StableDiffusionPipeline.KindOf(models.Get("depth2img"), Request("img2img")));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void StrengthOutsideZeroToOneIsRefused(double strength)
    {
        var request = Request<ImageToImageInput>("img2img", input => input with { Strength = strength });
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => StableDiffusionPipeline.Generate(models.Get("img2img"), request));
        Assert.Equal("Strength", error.ParamName);
        Assert.StartsWith("Strength ", error.Message);
        Assert.Equal(strength, (double)error.ActualValue!);
    }

    [Fact]
    public void StrengthThatLeavesNoStepIsRefused()
    {
        var request = Request<ImageToImageInput>("img2img", input => input with { Strength = 0.05 }) with { Steps = 10 };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => StableDiffusionPipeline.Generate(models.Get("img2img"), request));
        Assert.Contains("no denoising step", error.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(351)]
    public void NoiseLevelOutsideRangeIsRefused(int level)
    {
        var request = Request<UpscaleInput>("upscale_x4", input => input with { NoiseLevel = level });
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => StableDiffusionPipeline.Generate(models.Get("upscale_x4"), request));
        Assert.Equal("NoiseLevel", error.ParamName);
        Assert.Contains(level.ToString(System.Globalization.CultureInfo.InvariantCulture), error.Message);
        Assert.Contains("350", error.Message);
    }

    [Fact]
    public void DepthWithoutDepthMapAsksForOne()
    {
        var request = Request<DepthToImageInput>("depth2img", input => input with { DepthMap = null });
        var error = Assert.Throws<PipelineMismatchException>(() => StableDiffusionPipeline.Generate(models.Get("depth2img"), request));
        Assert.Contains("depth map", error.Message);
    }

    [Fact]
    public void SchedulerOptionsAreCheckedByTheEngineAgainstTheModelsScheduler()
    {
        // The golden img2img model ships EulerDiscrete, which takes no eta: an engine caller gets the error a cmdlet user gets.
        var request = Request("img2img") with { Eta = 0.5 };
        var error = Assert.Throws<ArgumentException>(() => StableDiffusionPipeline.Generate(models.Get("img2img"), request));
        Assert.Equal("Eta", error.ParamName);
        Assert.StartsWith("Eta does not apply", error.Message);
        Assert.Throws<UnknownSchedulerException>(() =>
            StableDiffusionPipeline.Generate(models.Get("img2img"), Request("img2img") with { Scheduler = "no such sampler" }));
    }

    [Fact]
    public void InputNotAMultipleOfEightIsResizedDownAndLogged()
    {
        var source = SDImage.Load(Golden.Path("img2img", "input_image.png")).Resize(70, 61);
        var logs = new List<string>();
        var request = Request("img2img") with { Input = new ImageToImageInput { Image = source.ToTensor(), Strength = 1.0 }, Steps = 2 };

        using var result = StableDiffusionPipeline.Generate(models.Get("img2img"), request, new PipelineObserver { Log = logs.Add });

        Assert.Equal((64, 56), (result.Width, result.Height));
        Assert.Equal(new long[] { 1, 3, 56, 64 }, result.Images.shape);
        Assert.Contains(logs, line => line.Contains("70x61 is not a multiple of 8; using 64x56"));
    }

    [Fact]
    public void MaskOfAnotherSizeIsResizedWithAWarning()
    {
        var mask = GrayImage.Load(Golden.Path("inpaint", "input_mask.png")).ResizeNearest(32, 32);
        var warnings = new List<string>();
        var request = Request<InpaintInput>("inpaint", input => input with { Mask = mask.ToTensor(normalize: true) }) with { Steps = 1 };

        using var result = StableDiffusionPipeline.Generate(models.Get("inpaint"), request, new PipelineObserver { Warn = warnings.Add });

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
        var request = GoldenRequests.For(golden);
        request = request with { Input = ((InpaintInput)request.Input) with { Composite = true } };

        var image = Assert.Single(ImageGeneration.Generate(models.Get("inpaint"), request));

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
        var request = Request<UpscaleInput>("upscale_x4", input => input with { SourceImageHash = "given-hash", NoiseLevel = 35 }) with { Steps = 1 };
        var image = Assert.Single(ImageGeneration.Generate(models.Get("upscale_x4"), request));
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

        using var result = StableDiffusionPipeline.Generate(models.Get("img2img"), request);

        Assert.Equal(new long[] { 2, 3, 64, 64 }, result.Images.shape);
        Assert.Equal(new long[] { 1, 4, 8, 8 }, noise.Shapes[0]);  // one posterior sample, duplicated for the batch
        Assert.All(noise.Shapes.Skip(1), shape => Assert.Equal(new long[] { 2, 4, 8, 8 }, shape));
        Assert.Equal(2 + 6, noise.Shapes.Count);                   // posterior, start noise, one Euler draw per step (6 steps)
        var difference = (result.Images[0] - result.Images[1]).abs().max().item<float>();
        Assert.True(difference > 0.01f, "the two images of a batch should differ (different start noise)");
    }
}
