using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Dpt;

/// <summary>
/// The DPT-Hybrid depth estimator and its image processor against transformers (tests/golden/depth_estimator,
/// made by tests/golden/tools/make_dpt_hybrid.py): pixels, every stage's hidden state and predicted_depth.
/// </summary>
public class DPTGoldenTests
{
    /// <summary>The processor's float32 pixels equal numpy's bit for bit: the same bytes from the Pillow-identical
    /// resize, then the same float64 rescale and float32 normalisation.</summary>
    private const double PixelTolerance = 0;

    private readonly ITestOutputHelper _output;

    public DPTGoldenTests(ITestOutputHelper output) => _output = output;

    internal static string Folder => Golden.Path("depth_estimator");

    internal static DPTForDepthEstimation LoadModel() =>
        DPTForDepthEstimation.FromPretrained(Path.Combine(Folder, "depth_estimator"), ScalarType.Float32, torch.CPU);

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void PreprocessingMatchesTransformers(int index)
    {
        using var golden = Golden.Case("depth_estimator");
        var image = SDImage.Load(Path.Combine(Folder, $"input{index}.png"));
        var processor = DPTImageProcessor.FromPretrained(Path.Combine(Folder, "feature_extractor"));
        using var pixels = processor.Preprocess(image);
        var diff = Golden.AssertClose(golden.Tensor($"pixel_values{index}"), pixels, PixelTolerance, $"pixel_values{index}");
        _output.WriteLine($"pixel_values{index} {string.Join("x", pixels.shape)} max abs diff {diff:G3}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void KeepAspectRatioAndMultipleMatchTransformers(int index)
    {
        using var golden = Golden.Case("depth_estimator");
        var image = SDImage.Load(Path.Combine(Folder, $"input{index}.png"));
        var processor = new DPTImageProcessor(DPTImageProcessorConfig.FromFile(Path.Combine(Folder, "preprocessor_config_keep_aspect.json")));
        using var pixels = processor.Preprocess(image);
        var diff = Golden.AssertClose(golden.Tensor($"pixel_values_keep_aspect{index}"), pixels, PixelTolerance, $"pixel_values_keep_aspect{index}");
        _output.WriteLine($"pixel_values_keep_aspect{index} {string.Join("x", pixels.shape)} max abs diff {diff:G3}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void HiddenStatesAndDepthMatchTransformers(int index)
    {
        using var golden = Golden.Case("depth_estimator");
        using var model = LoadModel();
        using var scope = torch.NewDisposeScope();
        var states = model.ForwardWithIntermediates(golden.Tensor($"pixel_values{index}"));
        var compared = 0;
        foreach (var name in golden.Io.Tensors.Keys.Where(k => k.EndsWith(index.ToString(), StringComparison.Ordinal)
            && !k.StartsWith("pixel_values", StringComparison.Ordinal) && !k.StartsWith("input", StringComparison.Ordinal)).Order())
        {
            var stage = name[..^index.ToString().Length];
            Assert.True(states.ContainsKey(stage), $"the model gives no '{stage}'");
            var diff = golden.AssertClose(name, states[stage]);
            _output.WriteLine($"{name} max abs diff {diff:G3} (tolerance {golden.Tolerance(name):G3})");
            compared++;
        }
        Assert.True(compared >= 20, $"only {compared} hidden states compared");
        using var depth = model.Forward(golden.Tensor($"pixel_values{index}"));
        golden.AssertClose($"predicted_depth{index}", depth);
    }
}
