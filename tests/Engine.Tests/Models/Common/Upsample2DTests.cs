using PSStableDiffusion.Engine.Models.Common;
using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Common;

/// <summary>
/// Upsample2D's phase path (four 2x2 convolutions of the input) against diffusers' definition, computed here with
/// libtorch's own nearest interpolation and 3x3 convolution on the same weights. Tolerance: 2e-6 relative to the
/// output's magnitude, float32 rounding of the folded taps (measured ~4e-7 here).
/// </summary>
public class Upsample2DTests
{
    private const double RelativeTolerance = 2e-6;

    [Theory]
    [InlineData(1, 8, 8, 64, 64, false)]   // the smallest input that takes the phase path
    [InlineData(2, 6, 10, 64, 96, false)]  // batch, width change, non-square
    [InlineData(1, 8, 8, 72, 64, true)]    // channels-last input, as the VAE decoder passes it
    public void PhasePathEqualsNearestUpsampleThenConv(long batch, long channels, long outChannels, long height, long width, bool channelsLast)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Assert.True(height * width >= Upsample2D.PhasePathMinPixels);
        var (upsample, weight, bias) = Build(channels, outChannels, seed: 3);
        var input = torch.randn(new[] { batch, channels, height, width }, generator: new torch.Generator(4)); // [B, C, H, W]
        if (channelsLast) input = ChannelsLast.Of(input);

        var actual = upsample.forward(input); // [B, C_out, 2H, 2W]
        var expected = Reference(input, weight, bias);

        Assert.Equal(expected.shape, actual.shape);
        double scale = expected.abs().max().item<float>();
        double diff = (actual - expected).abs().max().item<float>();
        Assert.True(diff <= RelativeTolerance * scale, $"max |diff| {diff:E2} > {RelativeTolerance:E0} × {scale:F2}");
        // The explicit size of the same doubling takes the same path.
        var sized = upsample.Forward(input, new[] { 2 * height, 2 * width });
        Assert.Equal(0.0, (sized - actual).abs().max().item<float>());
    }

    [Fact]
    public void SmallInputsAndOtherSizesKeepTheDirectPathBitForBit()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (upsample, weight, bias) = Build(8, 8, seed: 5);
        var small = torch.randn(new long[] { 1, 8, 16, 16 }, generator: new torch.Generator(6)); // below PhasePathMinPixels
        Assert.Equal(0.0, (upsample.forward(small) - Reference(small, weight, bias)).abs().max().item<float>());

        var large = torch.randn(new long[] { 1, 8, 64, 64 }, generator: new torch.Generator(7));
        var odd = upsample.Forward(large, new long[] { 127, 129 }); // not a doubling: interpolate to the size, then conv
        var expected = nn.functional.conv2d(nn.functional.interpolate(large, size: new long[] { 127, 129 }, mode: InterpolationMode.Nearest),
            weight, bias, padding: new long[] { 1, 1 });
        Assert.Equal(new long[] { 1, 8, 127, 129 }, odd.shape);
        Assert.Equal(0.0, (odd - expected).abs().max().item<float>());
    }

    [Fact]
    public void PhaseWeightsFoldEachTapIntoTheRightPhase()
    {
        using var scope = torch.NewDisposeScope();
        // A kernel whose taps are distinct powers of two, so every folded sum is exact and identifiable.
        var weight = torch.pow(2.0, ScalarSafeTensor.Arange(9, ScalarType.Float32, CPU)).view(1, 1, 3, 3); // [1, 1, 3, 3]
        var folded = Upsample2D.PhaseWeights(weight); // [4, 1, 2, 2]
        Assert.Equal(new long[] { 4, 1, 2, 2 }, folded.shape);
        float W(int r, int c) => MathF.Pow(2, r * 3 + c);
        // Phase (dy, dx): rows fold (w0, w1+w2) for dy = 0 and (w0+w1, w2) for dy = 1; columns the same with dx.
        int[][] foldedIndex = { new[] { 0, 1, 1 }, new[] { 0, 0, 1 } }; // tap → folded tap, per phase
        for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++)
        {
            var expected = new float[2, 2];
            for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++)
                expected[foldedIndex[dy][r], foldedIndex[dx][c]] += W(r, c);
            for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                Assert.Equal(expected[i, j], folded[dy * 2 + dx, 0, i, j].item<float>());
        }
    }

    private static (Upsample2D Module, Tensor Weight, Tensor Bias) Build(long channels, long outChannels, ulong seed)
    {
        var upsample = new Upsample2D(channels, outChannels);
        var generator = new torch.Generator(seed);
        var draw = torch.randn(new[] { outChannels, channels, 3L, 3L }, generator: generator); // [C_out, C, 3, 3]
        Tensor weight = draw.ScalarSafe() * 0.2;
        var bias = torch.randn(new[] { outChannels }, generator: generator); // [C_out]
        var parameters = upsample.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using (torch.no_grad())
        {
            parameters["conv.weight"].copy_(weight);
            parameters["conv.bias"].copy_(bias);
        }
        return (upsample, weight, bias);
    }

    // diffusers: F.interpolate(x, scale_factor=2.0, mode="nearest") then the 3x3 conv, padding 1.
    private static Tensor Reference(Tensor input, Tensor weight, Tensor bias) =>
        nn.functional.conv2d(nn.functional.interpolate(input, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest),
            weight, bias, padding: new long[] { 1, 1 });
}
