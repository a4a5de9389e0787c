using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Imaging;

public class ImagingGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> AllCases => GoldenCases.PipelineCases;
    public static TheoryData<string> ImageInputCases => GoldenCases.ImageInputCases;

    [Theory]
    [MemberData(nameof(AllCases))]
    public void VaeOutputPostProcessesToImageUint8(string caseName)
    {
        using var scope = NewDisposeScope();
        using var golden = Golden.Case(caseName);
        var io = golden.Io;
        var image = SDImage.FromTensor(io.Read("vae_decode_output"));
        var expected = io.Read("image_uint8");
        Assert.Equal(new long[] { image.Height, image.Width, 3 }, expected.shape);

        var actual = tensor(image.Pixels, [image.Height, image.Width, 3], ScalarType.Byte);
        var diff = (actual.to(ScalarType.Int32) - expected.to(ScalarType.Int32)).abs();
        var maxDiff = diff.max().item<int>();
        var differing = diff.ScalarSafe().Greater(0).sum().item<long>();
        output.WriteLine($"{caseName}: max abs diff {maxDiff} levels, {differing} of {diff.numel()} values differ");
        Assert.True(maxDiff <= golden.Tolerance("image_uint8"), $"{caseName}: max diff {maxDiff}");
        // Same float32 input and the same float32 operations as diffusers/numpy: the bytes should be identical.
        Assert.Equal(0, maxDiff);
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void ExpectedPngDecodesToImageUint8(string caseName)
    {
        using var scope = NewDisposeScope();
        using var golden = Golden.Case(caseName);
        var io = golden.Io;
        var image = ImageCodec.Read(Golden.Path(caseName, "expected.png"));
        Assert.Equal(io.Read("image_uint8").bytes.ToArray(), image.Pixels);
        Assert.Equal(image.Width, image.Record.Width);
        Assert.Equal("", image.Record.Prompt);
    }

    [Theory]
    [MemberData(nameof(ImageInputCases))]
    public void InputImagePngDecodesAndPreprocessesLikeDiffusers(string caseName)
    {
        using var scope = NewDisposeScope();
        using var golden = Golden.Case(caseName);
        var io = golden.Io;
        var image = SDImage.Load(Golden.Path(caseName, "input_image.png"));
        Assert.Equal(io.Read("input_image_uint8").bytes.ToArray(), image.Pixels);

        var diff = Golden.AssertClose(io.Read("image_preprocess0_output"), image.ToTensor(),
            golden.Tolerance("image_preprocess0_output"), $"{caseName}/image_preprocess0_output");
        output.WriteLine($"{caseName}: image_preprocess0_output max abs diff {diff:G3}");
    }

    [Fact]
    public void SixteenBitDepthPngKeepsEveryBit()
    {
        using var scope = NewDisposeScope();
        using var golden = Golden.Case("depth2img");
        var io = golden.Io;
        var depth = ImageCodec.ReadGray(Golden.Path("depth2img", "input_depth.png"));
        Assert.Equal(16, depth.BitDepth);
        var expected = io.Read("input_depth_map"); // [1, H, W] float32 holding integers 0..65535
        Golden.AssertClose(expected, depth.ToTensor(), 0.0, "input_depth_map");
        Assert.True(depth.Values.Any(v => v % 257 != 0), "the fixture should hold values an 8-bit decode would lose");
    }

    [Fact]
    public void MaskPngReadsAsItsGrayValuesAndBinarisesLikeDiffusers()
    {
        using var scope = NewDisposeScope();
        using var golden = Golden.Case("inpaint");
        var io = golden.Io;
        var mask = GrayImage.Load(Golden.Path("inpaint", "input_mask.png"));
        Assert.Equal(8, mask.BitDepth);
        Assert.Equal(io.Read("input_mask_uint8").bytes.ToArray(), mask.Values.Select(v => (byte)v).ToArray());

        // diffusers' mask processor: L, /255, then 1 where >= 0.5 else 0.
        var gray = mask.ToTensor(normalize: true);                                          // [1, H, W]
        var binary = gray.ScalarSafe().GreaterOrEqual(0.5).to(ScalarType.Float32).unsqueeze(0); // [1, 1, H, W]
        Golden.AssertClose(io.Read("mask_preprocessed"), binary, golden.Tolerance("mask_preprocessed"), "mask_preprocessed");
    }
}
