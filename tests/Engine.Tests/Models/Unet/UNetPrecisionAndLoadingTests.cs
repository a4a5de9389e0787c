using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Unet;

public class UNetPrecisionAndLoadingTests
{
    private readonly ITestOutputHelper _output;

    public UNetPrecisionAndLoadingTests(ITestOutputHelper output) => _output = output;

    /// <summary>
    /// bfloat16 weights and activations (upcast attention in float32) stay close to diffusers' float32 output:
    /// bf16 keeps 8 significant bits, so a few percent of the output range is the expected error.
    /// diffusers' own UNet in bf16 on PyTorch 1.13 (the reference stack) is off by 0.0845 (txt2img_v) and 0.0787
    /// (upscale_x4) at this step; ours by 0.0888 and 0.0536 (both on an AMD EPYC Zen 4 with avx512_bf16).
    /// </summary>
    [Theory]
    [InlineData("txt2img_v")]   // upcast_attention: true
    [InlineData("upscale_x4")]  // upcast_attention: false, class labels
    public void BFloat16UNetStaysCloseToTheFloat32Reference(string caseName)
    {
        using var golden = Golden.Case(caseName);
        using var unet = UNet2DConditionModel.FromPretrained(
            Path.Combine(golden.ModelFolder, "unet"), ScalarType.BFloat16, torch.CPU);
        using var scope = torch.NewDisposeScope();
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);
        var classLabels = golden.Has("step00_class_labels") ? golden.Tensor("step00_class_labels") : null;
        var actual = unet.forward(golden.Tensor("step00_unet_input").to(ScalarType.BFloat16), golden.Tensor("step00_timestep"),
            context.to(ScalarType.BFloat16), classLabels);
        Assert.Equal(ScalarType.BFloat16, actual.dtype);
        var expected = golden.Tensor("step00_unet_output");
        var range = expected.abs().max().item<float>();
        var diff = Golden.AssertClose(expected, actual.to(ScalarType.Float32), 0.05 * range, $"{caseName}/step00_unet_output (bf16)");
        _output.WriteLine($"{caseName} bf16 max abs diff {diff:G3} of output range {range:G3}");
    }

    [Fact]
    public void LoadingWeightsOfAnotherArchitectureNamesTheMismatch()
    {
        // The inpainting UNet is the img2img one with 9 input channels: same keys, one different shape.
        using var golden = Golden.Case("img2img");
        var config = UNet2DConditionConfig.FromFile(Path.Combine(golden.ModelFolder, "unet", "config.json"));
        // Built on the meta device, as FromPretrained builds it: the key check runs before any weight is read.
        using var unet = new UNet2DConditionModel(config, ScalarType.Float32, device: torch.META);
        var inpaintWeights = Golden.Path("inpaint", "model", "unet", "diffusion_pytorch_model.safetensors");
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Materialize(unet, new[] { inpaintWeights }, ScalarType.Float32, torch.CPU));
        Assert.Contains("conv_in.weight", error.Message);

        var otherKeys = Golden.Path("txt2img_v", "model", "unet", "diffusion_pytorch_model.safetensors");
        error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Materialize(unet, new[] { otherKeys }, ScalarType.Float32, torch.CPU));
        Assert.Contains("unexpected key", error.Message);
        Assert.Contains("down_blocks.1.attentions", error.Message);
    }

    [Fact]
    public void MissingFolderThrowsFileNotFound()
    {
        using var temp = new TempFolder("no-such-unet-");
        var folder = temp.Combine("no-such-unet");
        var error = Assert.Throws<FileNotFoundException>(() => UNet2DConditionModel.FromPretrained(folder, ScalarType.Float32, torch.CPU));
        Assert.Contains("config.json", error.Message);
    }
}
