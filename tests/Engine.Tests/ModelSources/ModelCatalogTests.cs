using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

/// <summary><see cref="ModelCatalog"/> on the golden folders and single files: described from configs and headers.</summary>
public class ModelCatalogTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases => GoldenCases.PipelineCases;

    private static string ExpectedVariant(string caseName) => caseName switch
    {
        "inpaint" => "inpainting",
        "depth2img" => "depth2img",
        "upscale_x4" => "x4-upscaler",
        _ => "txt2img",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void GoldenFolderAndSingleFileAreDescribedWithoutLoading(string caseName)
    {
        var folder = Golden.Path(caseName, "model");
        var model = ModelCatalog.Describe(folder);
        var unet = UNet2DConditionConfig.FromFile(Path.Combine(folder, "unet", "config.json"));
        var vae = AutoencoderKLConfig.FromFile(Path.Combine(folder, "vae", "config.json"));
        Assert.Equal("model", model.Name);
        Assert.Equal(folder, model.Path);
        Assert.Equal(ModelCatalog.FolderSource, model.Source);
        Assert.Equal(ExpectedVariant(caseName), model.Kind);
        Assert.Equal(SchedulerConfig.Load(Path.Combine(folder, "scheduler")).PredictionType, model.PredictionType);
        Assert.Equal(unet.SampleSize!.Value * vae.DownscaleFactor, model.DefaultSize);
        Assert.Equal("float32", model.DType);
        Assert.Equal(Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length), model.SizeOnDisk);
        Assert.Null(model.Error);
        Assert.Null(model.Commit);

        // The single file, by detection alone (no YAML beside it under its own name): the same variant.
        var path = Golden.Path(caseName, "single_file.safetensors");
        var single = ModelCatalog.Describe(path);
        output.WriteLine($"{caseName}: folder {model.Kind}/{model.PredictionType}/{model.DefaultSize}; single file {single.Kind}/{single.PredictionType}/{single.DefaultSize}");
        Assert.Equal("single_file.safetensors", single.Name);
        Assert.Equal(ModelCatalog.SingleFileSource, single.Source);
        Assert.Equal(model.Kind, single.Kind);
        Assert.Equal("float32", single.DType);
        Assert.Equal(new FileInfo(path).Length, single.SizeOnDisk);
        Assert.Null(single.ConfigPath);
        Assert.Contains(single.Notes, n => n.StartsWith("Assumed prediction type", StringComparison.Ordinal));
        Assert.Equal(caseName is "inpaint" or "depth2img" ? "epsilon" : "v_prediction", single.PredictionType); // detection: diffusers' rules
        Assert.Null(single.Error);
    }

    [Fact]
    public void YamlBesideTheCheckpointAndFp16CkptAreReflected()
    {
        using var temp = new TempFolder();
        var checkpoint = temp.Combine("tiny.safetensors");
        File.Copy(Golden.Path("txt2img_eps_dpmpp", "single_file.safetensors"), checkpoint);
        File.Copy(Golden.Path("txt2img_eps_dpmpp", "ldm_config.yaml"), temp.Combine("tiny.yaml"));
        var withYaml = ModelCatalog.Describe(checkpoint);
        Assert.Equal(temp.Combine("tiny.yaml"), withYaml.ConfigPath);
        Assert.Equal("epsilon", withYaml.PredictionType); // the YAML has no parameterization: ldm's eps
        Assert.Equal(64, withYaml.DefaultSize); // image_size 8 x 8

        var ckpt = temp.Combine("half.ckpt");
        WriteCkpt(Golden.Path("inpaint", "single_file.safetensors"), ckpt, dtype: TorchSharp.torch.ScalarType.Float16);
        var half = ModelCatalog.Describe(ckpt);
        Assert.Equal("float16", half.DType);
        Assert.Equal("inpainting", half.Kind);
        Assert.Equal(new FileInfo(ckpt).Length, half.SizeOnDisk);
    }

    [Fact]
    public void FindListsTheModelsInAFolderAndFlagsWhatIsNoModel()
    {
        // A golden case folder: the diffusers folder, the checkpoint, and io.safetensors (tensors, not a model).
        var found = ModelCatalog.Find(Golden.Path("inpaint"));
        Assert.Equal(new[] { "io.safetensors", "model", "single_file.safetensors" }, found.Select(m => m.Name));
        var io = found[0];
        Assert.NotNull(io.Error);
        Assert.Null(io.Kind);
        output.WriteLine($"io.safetensors: {io.Error}");
        Assert.All(found.Skip(1), m => Assert.Equal("inpainting", m.Kind));

        Assert.Throws<DirectoryNotFoundException>(() => ModelCatalog.Find(Golden.Path("inpaint", "nothing-here")));
        Assert.Throws<NotSupportedException>(() => ModelCatalog.Describe(Golden.Path("inpaint", "case.json")));
        Assert.Throws<DirectoryNotFoundException>(() => ModelCatalog.Describe(Golden.Path("inpaint")));
        Assert.Empty(ModelCatalog.ListHubCache(Golden.Path("inpaint", "no-cache")));
    }
}
