using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Loading;

/// <summary>
/// A diffusers folder whose components hold only pickled weights (<c>pytorch_model.bin</c>,
/// <c>diffusion_pytorch_model.bin</c>), as older repositories and fine-tunes ship them. The fixture is the img2img
/// case's model saved by diffusers/transformers with <c>safe_serialization=False</c>, and diffusers itself reproduces the
/// img2img case from it (tests/golden/tools/make_bin_weights.py).
/// </summary>
public sealed class PickledBinFolderTests(ITestOutputHelper output)
{
    private static string BinFolder => Golden.Path("bin_weights", "model");

    [Fact]
    public void BinFolder_LoadsTheSameWeightsAsTheSafetensorsFolder()
    {
        var log = new List<string>();
        using var fromBin = DiffusersFolderLoader.Load(BinFolder, ComputeTarget.Cpu32, variant: null, predictionType: null, log.Add);
        using var fromSafetensors = DiffusersFolderLoader.Load(Golden.Path("img2img", "model"), ComputeTarget.Cpu32, null, null);
        foreach (var (name, binModule, safeModule) in new (string, nn.Module, nn.Module)[]
        {
            ("text_encoder", fromBin.TextEncoder, fromSafetensors.TextEncoder), ("unet", fromBin.Unet, fromSafetensors.Unet),
            ("vae", fromBin.Vae, fromSafetensors.Vae),
        })
        {
            var expected = safeModule.state_dict();
            var actual = binModule.state_dict();
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, tensor) in expected)
                Assert.True(SameValues(tensor, actual[key]), $"{name}: {key} differs between the .bin and the safetensors folder");
        }
        // -Verbose says the pickled files were read, and how.
        Assert.Equal(3, log.Count(line => line.Contains("restricted unpickler", StringComparison.Ordinal)));
    }

    [Fact]
    public void BinFolder_GivesTheGoldenImage()
    {
        using var golden = Golden.Case("img2img");
        using var model = DiffusersFolderLoader.Load(BinFolder, ComputeTarget.Cpu32, null, null);
        using var run = Run(model, golden, null);
        using var expectedLatents = golden.Tensor("final_latents");
        double tolerance = Pipelines.ImagePipelineGoldenTests.ToleranceWithFloor(golden, "final_latents");
        double diff = Golden.AssertClose(expectedLatents, run.FinalLatents, tolerance, "bin folder final_latents");
        int levels = MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), run.Image);
        output.WriteLine($"final_latents max abs diff {diff:G3} (tolerance {tolerance:G3}); image {levels} level(s) from expected.png");
        Assert.True(levels <= 2, $"{levels} levels from the golden image");
    }

    [Fact]
    public void BinFolder_WithAPickleThatCallsAGlobal_IsRefusedBeforeAnythingRuns()
    {
        using var temp = new TempFolder("sd-bin-hostile-");
        CopyDirectory(BinFolder, temp.Path);
        File.Copy(Golden.Path("ckpt", "lightning-hidden-os-system.ckpt"), temp.Combine("unet", "diffusion_pytorch_model.bin"), overwrite: true);
        var error = Assert.Throws<UnsafeCheckpointException>(() => DiffusersFolderLoader.Load(temp.Path, ComputeTarget.Cpu32, null, null));
        Assert.Contains("system", error.Message, StringComparison.Ordinal); // names the refused global
    }
}
