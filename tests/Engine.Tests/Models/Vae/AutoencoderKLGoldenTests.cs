using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Vae;

/// <summary>The VAE against diffusers' decode and encode outputs of every golden pipeline case.</summary>
public class AutoencoderKLGoldenTests
{
    private readonly ITestOutputHelper _output;

    public AutoencoderKLGoldenTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData("txt2img_v")]
    [InlineData("txt2img_eps_dpmpp")]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("depth2img")]
    [InlineData("upscale_x4")]
    public void DecodeMatchesDiffusers(string caseName)
    {
        using var golden = Golden.Case(caseName);
        using var vae = AutoencoderKL.FromPretrained(Path.Combine(golden.ModelFolder, "vae"), ScalarType.Float32, torch.CPU);
        using var scope = torch.NewDisposeScope();
        var decoded = vae.Decode(golden.Tensor("vae_decode_input"));
        var diff = golden.AssertClose("vae_decode_output", decoded);
        _output.WriteLine($"{caseName}/vae_decode_output max abs diff {diff:G3} (tolerance {golden.Tolerance("vae_decode_output"):G3})");
    }

    [Theory]
    [InlineData("img2img")]
    [InlineData("inpaint")]
    [InlineData("depth2img")]
    public void EncodeMatchesDiffusersPosterior(string caseName)
    {
        using var golden = Golden.Case(caseName);
        using var vae = AutoencoderKL.FromPretrained(Path.Combine(golden.ModelFolder, "vae"), ScalarType.Float32, torch.CPU);
        using var scope = torch.NewDisposeScope();
        using var posterior = vae.Encode(golden.Tensor("vae_encode0_input"));
        var meanDiff = golden.AssertClose("vae_encode0_posterior_mean", posterior.Mean);
        var stdDiff = golden.AssertClose("vae_encode0_posterior_std", posterior.Std);
        _output.WriteLine($"{caseName}/vae_encode0 posterior mean max abs diff {meanDiff:G3} (tolerance {golden.Tolerance("vae_encode0_posterior_mean"):G3}), std {stdDiff:G3} (tolerance {golden.Tolerance("vae_encode0_posterior_std"):G3})");
    }

    [Theory]
    [InlineData("txt2img_v", 0.18215, 8)]
    [InlineData("upscale_x4", 0.08333, 4)]
    public void ScalingFactorAndDownscaleComeFromTheConfig(string caseName, double scalingFactor, int downscale)
    {
        using var golden = Golden.Case(caseName);
        var config = AutoencoderKLConfig.FromFile(Path.Combine(golden.ModelFolder, "vae", "config.json"));
        using var vae = new AutoencoderKL(config, device: torch.META);
        Assert.Equal(scalingFactor, vae.ScalingFactor);
        Assert.Equal(downscale, config.DownscaleFactor);
    }
}
