using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Common;

/// <summary>
/// A bfloat16 convolution with a partial block of output channels (libtorch 2.10's oneDNN computes these wrong on NCHW
/// input on some AVX-512 CPUs, see <see cref="NarrowConvolution"/>) stays at bfloat16 rounding level against float32
/// run on the same bfloat16-rounded inputs and weights. With float32 accumulation only the output rounding is left:
/// half an ulp, 2^-9 of the value; the bound is 2^-7 of the output range (4 half-ulps at the largest value). The broken
/// kernel is off by 20–45% of the range; the working one by 0.2–0.4%.
/// </summary>
public class NarrowConvolutionTests(ITestOutputHelper output)
{
    private const double RelativeBound = 1.0 / 128;

    [Theory]
    [InlineData(32, 4, 16, 3)]   // golden tiny UNet conv_out
    [InlineData(320, 4, 32, 3)]  // SD 2.x UNet conv_out (64x64 latents at full size)
    [InlineData(256, 4, 16, 3)]  // x4 upscaler UNet conv_out
    [InlineData(512, 8, 16, 3)]  // VAE encoder conv_out
    [InlineData(128, 3, 32, 3)]  // VAE decoder conv_out
    [InlineData(32, 17, 8, 3)]   // a partial block above 16
    [InlineData(32, 4, 16, 1)]   // 1x1
    [InlineData(32, 32, 16, 3)]  // whole blocks: the plain path
    public void BFloat16MatchesFloat32OnTheSameRoundedValues(int inChannels, int outChannels, int size, int kernel)
    {
        using var scope = torch.NewDisposeScope();
        // A generator of its own: the global one is shared with the tests running beside this one, so its draws (and
        // the figures printed below) would change from run to run.
        using var generator = new torch.Generator(7);
        using var conv = nn.Conv2d(inChannels, outChannels, kernel, padding: kernel / 2, dtype: ScalarType.BFloat16);
        FillLikeDefaultInit(conv, inChannels * kernel * kernel, generator);
        var input = torch.randn([2, inChannels, size, size], generator: generator).to(ScalarType.BFloat16); // [2, C_in, S, S]

        var actual = NarrowConvolution.Forward(conv, input).to(ScalarType.Float32);
        var expected = nn.functional.conv2d(input.to(ScalarType.Float32), conv.weight!.to(ScalarType.Float32),
            conv.bias!.to(ScalarType.Float32), padding: new long[] { kernel / 2, kernel / 2 });

        Assert.True(actual.is_contiguous());
        Assert.Equal(expected.shape, actual.shape);
        var range = expected.abs().max().item<float>();
        var error = (actual - expected).abs().max().item<float>();
        output.WriteLine($"{inChannels}->{outChannels} {kernel}x{kernel} at {size}²: max |Δ| {error:G3} of range {range:G3} ({error / range:P2})");
        Assert.True(error <= RelativeBound * range, $"max |Δ| {error} exceeds {RelativeBound} of the output range {range}");
    }

    /// <summary>Weights and bias of the scale nn.Conv2d's own initialisation gives (about 1/sqrt(fan_in)), drawn from
    /// <paramref name="generator"/>.</summary>
    private static void FillLikeDefaultInit(nn.Module<Tensor, Tensor> conv, int fanIn, torch.Generator generator)
    {
        using var noGrad = torch.no_grad();
        var scale = 1.0 / Math.Sqrt(fanIn);
        foreach (var (_, parameter) in conv.named_parameters())
        {
            using var drawn = (torch.randn(parameter.shape, generator: generator).ScalarSafe() * scale).Tensor;
            parameter.copy_(drawn);
        }
    }

    [Fact]
    public void Float32AndWholeBlocksTakeThePlainPath()
    {
        using var bf16 = torch.zeros(1, 8, 4, 4, ScalarType.BFloat16);
        using var fp32 = torch.zeros(1, 8, 4, 4);
        Assert.True(NarrowConvolution.NeedsChannelsLast(bf16, 4));
        Assert.False(NarrowConvolution.NeedsChannelsLast(bf16, 32));
        Assert.False(NarrowConvolution.NeedsChannelsLast(fp32, 4));
    }
}
