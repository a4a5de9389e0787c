using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;

namespace PSStableDiffusion.Engine.Tests;

public class SmokeTests
{
    [Fact]
    public void TorchSharpCpuGeneratorReproducesTheGoldenInitialNoise()
    {
        // txt2img_v: noise00 was drawn by torch.Generator('cpu').manual_seed(42) in diffusers' prepare_latents.
        using var golden = Golden.Case("txt2img_v");
        var expected = golden.Tensor("noise00");
        using var generator = new torch.Generator(42);
        var actual = torch.randn(expected.shape, generator: generator);
        Golden.AssertClose(expected, actual, 0.0, "noise00");
    }
}
