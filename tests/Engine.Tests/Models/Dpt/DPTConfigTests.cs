using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Dpt;

/// <summary>Config reading, validation and strict loading of the depth estimator.</summary>
public class DPTConfigTests
{
    private static string ConfigText => File.ReadAllText(Path.Combine(DPTGoldenTests.Folder, "depth_estimator", "config.json"));

    [Fact]
    public void ReadsEverySizeFromTheConfig()
    {
        var config = DPTConfig.FromJson(ConfigText);
        Assert.True(config.IsHybrid);
        Assert.Equal(128, config.HiddenSize);
        Assert.Equal(4, config.NumHiddenLayers);
        Assert.Equal(new[] { 2, 3 }, config.VitOutputLayers);
        Assert.Equal(new[] { 2, 1, 2 }, config.Bit.Depths);
        Assert.Equal(256, config.BackboneFeatureChannels);
    }

    [Fact]
    public void TheFullSizeDefaultsAreDptHybridMidas()
    {
        var config = DPTConfig.FromJson("""{"is_hybrid": true, "reassemble_factors": [1, 1, 1, 0.5], "neck_hidden_sizes": [256, 512, 768, 768]}""");
        Assert.Equal(768, config.HiddenSize);
        Assert.Equal(12, config.NumHiddenLayers);
        Assert.Equal(new[] { 8, 11 }, config.VitOutputLayers);
        Assert.Equal(new[] { 3, 4, 9 }, config.Bit.Depths);
        Assert.Equal(1024, config.Bit.StageChannels(2));
        Assert.Equal(1e-12, config.LayerNormEps);
    }

    [Theory]
    [InlineData("is_hybrid", "false")]
    [InlineData("readout_type", "\"add\"")]
    [InlineData("use_batch_norm_in_fusion_residual", "true")]
    [InlineData("neck_hidden_sizes", "[96, 192, 384]")]
    public void RejectsWhatIsNotImplementedNamingTheField(string field, string value)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(ConfigText)!.AsObject();
        json[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        var error = Assert.Throws<NotSupportedException>(() => DPTConfig.FromJson(json.ToJsonString()));
        Assert.Contains($"'{field}'", error.Message);
    }

    [Fact]
    public void RejectsPixelsOfAnotherSize()
    {
        using var model = DPTGoldenTests.LoadModel();
        using var pixels = torch.zeros(1, 3, 64, 96);
        var error = Assert.Throws<ArgumentException>(() => model.Forward(pixels));
        Assert.Contains("64x64", error.Message);
    }

    [Fact]
    public void StrictLoadingNamesAMissingKey()
    {
        using var temp = new TempFolder("psd-dpt-");
        var folder = temp.Path;
        var source = Path.Combine(DPTGoldenTests.Folder, "depth_estimator");
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(folder, "config.json"));
        using (var file = PSStableDiffusion.Engine.IO.SafeTensorsFile.Open(Path.Combine(source, DPTForDepthEstimation.WeightsFileName)))
        {
            var tensors = file.Tensors.Keys.Where(k => k != "neck.fusion_stage.layers.0.residual_layer1.convolution1.weight")
                .Select(k => (k, file.Read(k))).ToList();
            PSStableDiffusion.Engine.IO.SafeTensorsWriter.Write(Path.Combine(folder, DPTForDepthEstimation.WeightsFileName), tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        var error = Assert.Throws<ModelLoadException>(() => DPTForDepthEstimation.FromPretrained(folder, ScalarType.Float32, torch.CPU));
        Assert.Contains("neck.fusion_stage.layers.0.residual_layer1.convolution1.weight", error.Message);
    }
}
