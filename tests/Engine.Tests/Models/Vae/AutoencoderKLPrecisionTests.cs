using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Vae;

public class AutoencoderKLPrecisionTests
{
    private readonly ITestOutputHelper _output;

    public AutoencoderKLPrecisionTests(ITestOutputHelper output) => _output = output;

    /// <summary>
    /// bfloat16 decode (mid-block attention upcast to float32) stays within a few percent of the float32 decode, which
    /// itself matches diffusers (DecodeMatchesDiffusers). A 4x4 latent crop keeps it fast: bf16 convolutions are slow on CPU.
    /// </summary>
    [Fact]
    public void BFloat16DecodeStaysCloseToFloat32Decode()
    {
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var folder = Path.Combine(golden.ModelFolder, "vae");
        using var vae32 = AutoencoderKL.FromPretrained(folder, ScalarType.Float32, torch.CPU);
        using var vae16 = AutoencoderKL.FromPretrained(folder, ScalarType.BFloat16, torch.CPU);
        using var scope = torch.NewDisposeScope();
        var latents = golden.Tensor("vae_decode_input")[.., .., ..4, ..4];
        var expected = vae32.Decode(latents);
        var decoded = vae16.Decode(latents.to(ScalarType.BFloat16));
        Assert.Equal(ScalarType.BFloat16, decoded.dtype);
        var range = expected.abs().max().item<float>();
        var diff = Golden.AssertClose(expected, decoded.to(ScalarType.Float32), 0.05 * range, "vae decode (bf16 vs f32)");
        _output.WriteLine($"bf16 decode max abs diff {diff:G3} of output range {range:G3}");
    }
}
