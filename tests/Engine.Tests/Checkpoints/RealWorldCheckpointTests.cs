using System.IO.Compression;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;

namespace PSStableDiffusion.Engine.Tests.Checkpoints;

/// <summary>
/// Checkpoints as people have them, written by PyTorch itself (tests/golden/tools/make_lightning_ckpts.py, see
/// tests/golden/ckpt/README.md): Lightning-era .ckpt files with callbacks, numpy scalars and sets, the legacy non-zip
/// layout, embedding .pt files with ParameterDict and nn.Parameter, and one hiding os.system in a callback's state.
/// </summary>
public sealed class RealWorldCheckpointTests(ITestOutputHelper output)
{
    private const string CaseName = "inpaint"; // the weights in every full checkpoint of tests/golden/ckpt

    private static string Ckpt(string name) => Golden.Path("ckpt", name);

    [Theory]
    [InlineData("lightning.ckpt")]
    [InlineData("lightning-legacy.ckpt")]
    public void LightningCheckpoint_HoldsTheGoldenWeightsBitwise(string name)
    {
        using var source = SafeTensorsFile.Open(Golden.Path(CaseName, "single_file.safetensors"));
        using var checkpoint = TorchCheckpointFile.Open(Ckpt(name));
        ITensorFile file = checkpoint;
        Assert.Equal(200000, checkpoint.GlobalStep);
        Assert.Equal(new[] { "epoch", "global_step", "pytorch-lightning_version", "callbacks", "optimizer_states", "lr_schedulers",
            "hparams_ignored", "state_dict" }, checkpoint.TopLevelKeys);
        Assert.Equal(source.Tensors.Keys.Order(StringComparer.Ordinal), file.Keys.Order(StringComparer.Ordinal));
        foreach (var key in source.Tensors.Keys)
        {
            using var expected = source.Read(key);
            using var actual = file.Read(key);
            Assert.True(expected.bytes.SequenceEqual(actual.bytes), $"{name}: {key} differs from the safetensors tensor");
        }
    }

    [Theory]
    [InlineData("lightning.ckpt")]
    [InlineData("lightning-legacy.ckpt")]
    public void LightningCheckpoint_GivesTheGoldenImage(string name)
    {
        using var golden = Golden.Case(CaseName);
        using var model = SingleFileModelLoader.Load(Ckpt(name), ComputeTarget.Cpu32,
            new SingleFileOptions { ConfigPath = Golden.Path(CaseName, "ldm_config.yaml") });
        using var run = Run(model, golden, null);
        int levels = MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), run.Image);
        output.WriteLine($"{name} vs expected.png: {levels} level(s)");
        Assert.True(levels <= 2, $"{levels} levels from the golden image");
    }

    [Fact]
    public void LightningCallbackState_IsReadAsInertData()
    {
        // The zip's data.pkl straight through the unpickler: what the checkpoint carries beside the weights.
        using var zip = ZipFile.OpenRead(Ckpt("lightning.ckpt"));
        using var stream = zip.GetEntry("lightning/data.pkl")!.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var root = Assert.IsType<PickleDict>(RestrictedUnpickler.Load(buffer.ToArray(),
            pid => new TorchStorageRef((string)pid[2]!, TorchSharp.torch.ScalarType.Float32, "cpu", (long)pid[4]!)));
        Assert.Equal("little", new StreamReader(zip.GetEntry("lightning/byteorder")!.Open()).ReadToEnd());

        Assert.True(root.TryGet("callbacks", out var callbacksValue));
        var callbacks = Assert.IsType<PickleDict>(callbacksValue);
        var (key, stateValue) = Assert.Single(callbacks.Items);
        Assert.Equal(new PickleGlobal("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"), key); // the class as a key
        var state = Assert.IsType<PickleDict>(stateValue);
        // numpy.float64 scalars (numpy.core.multiarray.scalar(dtype('f8'), bytes)) come back as the numbers numpy wrote.
        Assert.True(state.TryGet("current_score", out var score));
        Assert.Equal(0.1234567890123, Assert.IsType<double>(score));
        Assert.True(state.TryGet("kth_value", out var kth));
        Assert.Equal(double.PositiveInfinity, kth);
        Assert.True(state.TryGet("best_k_models", out var best));
        Assert.Equal(0.25, Assert.Single(Assert.IsType<PickleDict>(best).Items).Value);
        Assert.True(root.TryGet("hparams_ignored", out var ignored)); // __builtin__.set
        Assert.Equal(new[] { "cond_stage_model", "first_stage_model" }, Assert.IsType<PickleList>(ignored).Cast<string>().Order());
        Assert.True(root.TryGet("epoch", out var epoch));
        Assert.Equal(5L, epoch);
    }

    [Theory]
    [InlineData("embedding.pt")]
    [InlineData("embedding-legacy.pt")]
    public void EmbeddingPt_WithParameterDictAndParameters_Opens(string name)
    {
        using var file = TorchCheckpointFile.Open(Ckpt(name));
        Assert.Equal(new[] { "string_to_token", "string_to_param", "name", "step", "sd_checkpoint_name", "tags", "state_dict" },
            file.TopLevelKeys);
        // state_dict holds an nn.Parameter (torch._utils._rebuild_parameter); the ParameterDict is an inert placeholder.
        Assert.Equal(new[] { "emb_params" }, ((ITensorFile)file).Keys);
        using var parameter = file.Read("emb_params");
        Assert.Equal(new long[] { 2, 8 }, parameter.shape);
        using var zip = TorchCheckpointFile.Open(Ckpt("embedding.pt"));
        using var fromZip = zip.Read("emb_params");
        Assert.True(fromZip.bytes.SequenceEqual(parameter.bytes), "the legacy and zip files hold the same parameter");
    }

    [Fact]
    public void LightningCheckpoint_HidingOsSystemInACallback_IsRefusedAndNothingRuns()
    {
        // The generator pickled os.system('touch /tmp/psstablediffusion-pwned'); on Linux Python names it posix.system.
        const string marker = "/tmp/psstablediffusion-pwned";
        if (File.Exists(marker)) File.Delete(marker);
        var error = Assert.Throws<UnsafeCheckpointException>(() => TorchCheckpointFile.Open(Ckpt("lightning-hidden-os-system.ckpt")));
        Assert.Equal("posix.system", error.RefusedGlobal);
        Assert.Contains("'posix.system'", error.Message);
        Assert.False(File.Exists(marker), "the hidden command ran");
        Assert.Throws<UnsafeCheckpointException>(() => CheckpointFiles.Open(Ckpt("lightning-hidden-os-system.ckpt")));
    }

    [Fact]
    public void SafetensorsWhoseHeaderLengthStartsWithTheByteOfAPickle_OpensAsSafetensors()
    {
        // This file's 8-byte header length is 0x013080: its first byte, 0x80, is also how a legacy pickle starts.
        var path = Golden.Path("txt2img_v", "model", "unet", "diffusion_pytorch_model.safetensors");
        using (var stream = File.OpenRead(path)) Assert.Equal(0x80, stream.ReadByte());
        using var file = CheckpointFiles.Open(path);
        Assert.IsType<SafeTensorsFile>(file);
        Assert.Contains("conv_in.weight", file.Keys);
    }

    [Theory]
    [InlineData("ModelCheckpoint", "pytorch_lightning.callbacks.model_checkpoint")]
    [InlineData("ParameterDict", "torch.nn.modules.container")]
    public void InertClass_AsAnObjectKeepsNoState(string name, string module)
    {
        // NEWOBJ of the class, BUILD with a state that names a forbidden global: the state is still read (and refused)
        // as the pickle goes, so a placeholder never lets a hostile global through.
        var clean = new PickleWriter().Proto(2).Op('}').Str("cb").Global(module, name).Op(')').Raw(0x81)
            .Op('}').Str("x").Raw((byte)'G', 0x3f, 0xf0, 0, 0, 0, 0, 0, 0).Op('s').Op('b').Op('s').Stop().ToArray();
        var root = Assert.IsType<PickleDict>(RestrictedUnpickler.Load(clean, _ => null));
        Assert.True(root.TryGet("cb", out var placeholder));
        Assert.Equal($"{module}.{name}", Assert.IsType<PickleObject>(placeholder).Class.FullName);

        var hostile = new PickleWriter().Proto(2).Op('}').Str("cb").Global(module, name).Op(')').Raw(0x81)
            .Op('}').Str("x").Global("os", "system").Str("true").Raw(0x85).Op('R').Op('s').Op('b').Op('s').Stop().ToArray();
        var error = Assert.Throws<UnsafeCheckpointException>(() => RestrictedUnpickler.Load(hostile, _ => null));
        Assert.Equal("os.system", error.RefusedGlobal);
    }

    [Fact]
    public void TruncatedLegacyCheckpoint_GivesClearErrors()
    {
        var bytes = File.ReadAllBytes(Ckpt("embedding-legacy.pt"));
        using var tempFolder = new TempFolder("legacy-cut-");
        var temp = tempFolder.Path;
        foreach (var keep in new[] { 1, 15, 100, 300, bytes.Length - 80, bytes.Length - 1 })
        {
            var path = Path.Combine(temp, $"cut-{keep}.pt");
            File.WriteAllBytes(path, bytes[..keep]);
            var error = Assert.ThrowsAny<CheckpointFormatException>(() => TorchCheckpointFile.Open(path).Dispose());
            Assert.Contains(path, error.Message);
            Assert.IsNotType<PickleNeedsMoreDataException>(error);
        }
    }
}
