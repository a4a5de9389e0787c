using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

/// <summary>What <see cref="ModelStore.Resolve"/> makes of a <c>-Model</c> value, and the errors for values that name nothing.</summary>
public sealed class ModelResolutionTests : IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void FoldersFilesAndHubIdsResolveByTheRules()
    {
        var folder = Golden.Path("inpaint", "model");
        Assert.Equal(new ModelSource(ModelSourceKind.DiffusersFolder, folder, folder + Path.DirectorySeparatorChar),
            ModelStore.Resolve(folder + Path.DirectorySeparatorChar));
        var single = Golden.Path("inpaint", "single_file.safetensors");
        Assert.Equal(ModelSourceKind.SingleFile, ModelStore.Resolve(single).Kind);
        foreach (var extension in new[] { ".ckpt", ".CKPT", ".pt", ".pth" })
        {
            var path = _temp.Combine("model" + extension);
            File.WriteAllBytes(path, new byte[8]);
            Assert.Equal(new ModelSource(ModelSourceKind.SingleFile, path, path), ModelStore.Resolve(path));
        }
        foreach (var id in new[] { "stabilityai/stable-diffusion-2-1", "org/name", "a.b_c/x-y.z", "Org1/Model_2.1" })
            Assert.Equal(new ModelSource(ModelSourceKind.HubRepository, id, id), ModelStore.Resolve(id, p => _temp.Combine(p)));

        // A local path wins over an id of the same form: org/name under the current folder is never downloaded.
        Directory.CreateDirectory(_temp.Combine("org", "name"));
        var local = ModelStore.Resolve("org/name", p => Path.GetFullPath(p, _temp.Path));
        Assert.Equal(ModelSourceKind.DiffusersFolder, local.Kind);
        Assert.Equal(_temp.Combine("org", "name"), local.Location);
    }

    [Fact]
    public void APathThatDoesNotExistNamesTheValueAndTheAcceptedForms()
    {
        var missing = _temp.Combine("no-such-model");
        var error = Assert.Throws<ModelNotFoundException>(() => ModelStore.Resolve(missing));
        Assert.IsAssignableFrom<DirectoryNotFoundException>(error); // the cmdlets' ModelNotFound
        Assert.Equal(missing, error.Value);
        Assert.Contains($"'{missing}'", error.Message);
        Assert.Contains("diffusers model folder", error.Message);
        Assert.Contains(".safetensors, .ckpt", error.Message);
        Assert.Contains("hub id", error.Message);

        // Through Acquire, the same error before anything is loaded.
        Assert.Throws<ModelNotFoundException>(() => ModelStore.Acquire(missing, ComputeTarget.Cpu32, null, default));

        // A missing checkpoint is a missing file.
        var checkpoint = _temp.Combine("models", "v2-1_768-ema-pruned.safetensors");
        var fileError = Assert.Throws<FileNotFoundException>(() => ModelStore.Resolve(checkpoint));
        Assert.Equal(checkpoint, fileError.FileName);
        Assert.Contains("hub id", fileError.Message);
    }

    [Fact]
    public void AFileThatIsNoCheckpointIsNotSupported()
    {
        var text = _temp.Combine("prompt.txt");
        File.WriteAllText(text, "a cat");
        var error = Assert.Throws<NotSupportedException>(() => ModelStore.Resolve(text));
        Assert.Contains($"'{text}'", error.Message);
        Assert.Contains(".txt file", error.Message);
        Assert.Contains("diffusers model folder", error.Message);
    }

    [Theory]
    [InlineData("org/na me")]
    [InlineData("org/name/extra")]
    [InlineData("org--x/name")]
    [InlineData("org/../name")]
    [InlineData("-org/name")]
    [InlineData("org/name.")]
    public void AMalformedHubIdIsNotFoundAndSaysWhatAnIdLooksLike(string value)
    {
        Assert.False(ModelStore.IsHubRepoId(value));
        var error = Assert.Throws<ModelNotFoundException>(() => ModelStore.Resolve(value, p => Path.GetFullPath(p, _temp.Path)));
        Assert.Contains($"'{value}'", error.Message);
        Assert.Contains("not a valid hub id", error.Message);
        Assert.Contains("org/name", error.Message);
    }

    [Fact]
    public void EmptyValueAndOptionsThatDoNotApplyAreArgumentErrors()
    {
        Assert.Throws<ArgumentException>(() => ModelStore.Resolve(" "));
        var folder = Golden.Path("inpaint", "model");
        var single = Golden.Path("inpaint", "single_file.safetensors");
        var cases = new (string Model, ModelLoadOptions Options, string Says)[]
        {
            (folder, new ModelLoadOptions { ConfigPath = Golden.Path("inpaint", "ldm_config.yaml") }, "single-file checkpoints only"),
            (folder, new ModelLoadOptions { Revision = "main" }, "hub ids only"),
            (single, new ModelLoadOptions { Token = "hf_x" }, "hub ids only"),
            (single, new ModelLoadOptions { Variant = "fp16" }, "diffusers folders and hub ids"),
            (folder, new ModelLoadOptions { PredictionType = "sample-ish" }, "Unknown prediction type"),
        };
        foreach (var (model, options, says) in cases)
        {
            var error = Assert.Throws<ArgumentException>(() => ModelStore.Acquire(model, ComputeTarget.Cpu32, options, null, default));
            Assert.Contains(says, error.Message);
        }
        var missingConfig = Assert.Throws<FileNotFoundException>(() => ModelStore.Acquire(single, ComputeTarget.Cpu32,
            new ModelLoadOptions { ConfigPath = _temp.Combine("none.yaml") }, null, default));
        Assert.Contains("none.yaml", missingConfig.Message);
    }

    [Fact]
    public void FolderVariantWeightsAndPredictionOverride()
    {
        // A local diffusers folder with only fp16 UNet weights beside the plain ones: the variant picks them.
        var folder = _temp.Combine("model");
        ModelSourceTestSupport.CopyDirectory(Golden.Path("inpaint", "model"), folder);
        var unetPath = Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors");
        using (var unet = PSStableDiffusion.Engine.IO.SafeTensorsFile.Open(unetPath))
        using (var scope = TorchSharp.torch.NewDisposeScope())
            PSStableDiffusion.Engine.IO.SafeTensorsWriter.Write(Path.Combine(folder, "unet", "diffusion_pytorch_model.fp16.safetensors"),
                unet.Tensors.Keys.Select(k => (k, unet.Read(k, TorchSharp.torch.ScalarType.Float16))).ToList());

        var log = new List<string>();
        using var fp16 = DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32, "fp16", "v", log.Add);
        using var plain = DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32);
        using var scope2 = TorchSharp.torch.NewDisposeScope();
        var fp16Weight = fp16.Unet.state_dict()["conv_in.weight"];
        var plainWeight = plain.Unet.state_dict()["conv_in.weight"];
        Assert.True(ModelSourceTestSupport.SameValues(plainWeight.to(TorchSharp.torch.ScalarType.Float16).to(TorchSharp.torch.ScalarType.Float32), fp16Weight));
        Assert.False(ModelSourceTestSupport.SameValues(plainWeight, fp16Weight));
        Assert.Contains(log, l => l.Contains("has no fp16 weights", StringComparison.Ordinal)); // text encoder and VAE fall back
        Assert.Equal("v_prediction", fp16.PredictionType);
        Assert.Equal("epsilon", plain.PredictionType);

        // Only variant weights and no variant asked: nothing to load, as in diffusers (the message names the variant);
        // asked for, the variant loads. .bin only: read as a torch pickle.
        File.Delete(unetPath);
        var onlyVariant = Assert.Throws<FileNotFoundException>(() => DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32));
        Assert.Contains("fp16", onlyVariant.Message);
        using (var only = DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32, "fp16", null))
            Assert.True(ModelSourceTestSupport.SameValues(only.Unet.state_dict()["conv_in.weight"], fp16Weight));
        File.Delete(Path.Combine(folder, "unet", "diffusion_pytorch_model.fp16.safetensors"));
        File.WriteAllBytes(Path.Combine(folder, "unet", "diffusion_pytorch_model.bin"), new byte[16]);
        var pickles = Assert.Throws<PSStableDiffusion.Engine.Checkpoints.CheckpointFormatException>(() => DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32));
        Assert.Contains("diffusion_pytorch_model.bin", pickles.Message); // read as a torch pickle, and named when it is none
    }
}
