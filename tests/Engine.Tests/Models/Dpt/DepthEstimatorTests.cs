using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Dpt;

/// <summary>Loading the estimator from a diffusers folder, a DPT folder and a single file's MiDaS weights.</summary>
public class DepthEstimatorTests
{
    private readonly ITestOutputHelper _output;

    public DepthEstimatorTests(ITestOutputHelper output) => _output = output;

    private static string SingleFile => Path.Combine(DPTGoldenTests.Folder, "single_file_depth_model.safetensors");

    [Fact]
    public void TheSingleFileMidasWeightsGiveTheFolderModelExactly()
    {
        using var golden = Golden.Case("depth_estimator");
        using var folder = DepthEstimator.Load(DPTGoldenTests.Folder, ScalarType.Float32, torch.CPU);
        using var single = DepthEstimator.Load(SingleFile, ScalarType.Float32, torch.CPU);
        Assert.Equal(folder.Model.Config.VitOutputLayers, single.Model.Config.VitOutputLayers);
        Assert.Equal(folder.Model.Config.NumAttentionHeads, single.Model.Config.NumAttentionHeads);
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < 3; i++)
        {
            var image = SDImage.Load(Path.Combine(DPTGoldenTests.Folder, $"input{i}.png"));
            var fromFolder = folder.Predict(image);
            var fromSingle = single.Predict(image);
            Assert.Equal(0.0, (fromFolder - fromSingle).abs().max().item<float>());
            var diff = golden.AssertClose($"predicted_depth{i}", fromSingle);
            _output.WriteLine($"single file predicted_depth{i} max abs diff {diff:G3}");
        }
        Assert.Equal(64, single.Processor.Config.TargetSize.Height);
    }

    [Fact]
    public void ADptFolderAloneLoadsWithItsOwnProcessorFile()
    {
        using var temp = new TempFolder("psd-dpt-");
        var folder = temp.Path;
        foreach (var file in Directory.GetFiles(Path.Combine(DPTGoldenTests.Folder, "depth_estimator")))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        File.Copy(Path.Combine(DPTGoldenTests.Folder, "feature_extractor", "preprocessor_config.json"), Path.Combine(folder, "preprocessor_config.json"));
        Assert.Equal(folder, DepthEstimator.Locate(folder));
        using var estimator = DepthEstimator.Load(folder, ScalarType.Float32, torch.CPU);
        using var golden = Golden.Case("depth_estimator");
        using var depth = estimator.Predict(SDImage.Load(Path.Combine(DPTGoldenTests.Folder, "input1.png")));
        golden.AssertClose("predicted_depth1", depth);
    }

    [Fact]
    public void AModelWithoutAnEstimatorIsNamed()
    {
        Assert.Null(DepthEstimator.Locate(Golden.Path("depth2img", "model")));
        Assert.Null(DepthEstimator.Locate(Golden.Path("depth2img", "single_file.safetensors")));
        var error = Assert.Throws<FileNotFoundException>(() => DepthEstimator.Load(Golden.Path("depth2img", "model"), ScalarType.Float32, torch.CPU));
        Assert.Contains("depth_estimator", error.Message);
    }

    [Fact]
    public void AnUnknownMidasKeyIsAnErrorNamingIt()
    {
        using var temp = new TempFolder("psd-dpt-");
        var path = temp.Combine("model.safetensors");
        using (var source = SafeTensorsFile.Open(SingleFile))
        {
            var tensors = source.Tensors.Keys.Select(k => (k, source.Read(k))).ToList();
            tensors.Add(("depth_model.model.scratch.refinenet9.out_conv.weight", torch.zeros(1)));
            SafeTensorsWriter.Write(path, tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        var error = Assert.Throws<ModelLoadException>(() => DepthEstimator.Load(path, ScalarType.Float32, torch.CPU));
        Assert.Contains("depth_model.model.scratch.refinenet9.out_conv.weight", error.Message);
    }
}
