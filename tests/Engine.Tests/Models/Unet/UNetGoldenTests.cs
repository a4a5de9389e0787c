using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Unet;

/// <summary>The UNet against diffusers' outputs: every scheduler call of every golden pipeline case.</summary>
public class UNetGoldenTests
{
    private readonly ITestOutputHelper _output;

    public UNetGoldenTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData("txt2img_v")]
    [InlineData("txt2img_eps_dpmpp")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("depth2img")]
    [InlineData("upscale_x4")]
    public void UNetMatchesDiffusersAtEveryStep(string caseName)
    {
        using var golden = Golden.Case(caseName);
        using var unet = UNet2DConditionModel.FromPretrained(
            Path.Combine(golden.ModelFolder, "unet"), ScalarType.Float32, torch.CPU);
        using var scope = torch.NewDisposeScope();
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);

        var steps = 0;
        for (var step = 0; golden.Has($"step{step:00}_unet_output"); step++, steps++)
        {
            var prefix = $"step{step:00}_";
            var classLabels = golden.Has(prefix + "class_labels") ? golden.Tensor(prefix + "class_labels") : null;
            var actual = unet.forward(golden.Tensor(prefix + "unet_input"), golden.Tensor(prefix + "timestep"), context, classLabels);
            var diff = golden.AssertClose(prefix + "unet_output", actual);
            _output.WriteLine($"{caseName}/{prefix}unet_output max abs diff {diff:G3} (tolerance {golden.Tolerance(prefix + "unet_output"):G3})");
        }
        Assert.True(steps >= 2, $"{caseName}: expected at least two UNet steps in the fixture, found {steps}.");
    }

    [Fact]
    public void UpscalerUNetRequiresClassLabels()
    {
        using var golden = Golden.Case("upscale_x4");
        using var unet = UNet2DConditionModel.FromPretrained(
            Path.Combine(golden.ModelFolder, "unet"), ScalarType.Float32, torch.CPU);
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);
        var error = Assert.Throws<ArgumentNullException>(() =>
            unet.forward(golden.Tensor("step00_unet_input"), golden.Tensor("step00_timestep"), context));
        Assert.Contains("class labels", error.Message);
    }

    [Fact]
    public void BatchOfTimestepsEqualsScalarTimestep()
    {
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        using var unet = UNet2DConditionModel.FromPretrained(
            Path.Combine(golden.ModelFolder, "unet"), ScalarType.Float32, torch.CPU);
        using var scope = torch.NewDisposeScope();
        var context = torch.cat(new[] { golden.Tensor("negative_prompt_embeds"), golden.Tensor("prompt_embeds") }, dim: 0);
        var timestep = golden.Tensor("step00_timestep");
        var perSample = unet.forward(golden.Tensor("step00_unet_input"), timestep.expand(2).contiguous(), context);
        golden.AssertClose("step00_unet_output", perSample);
    }
}
