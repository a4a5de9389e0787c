using PSStableDiffusion.Engine.Imaging;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Imaging;

/// <summary>Resizing against Pillow 9.4 outputs (Fixtures/make_resize_fixtures.py).</summary>
public class ImagingResizeTests(ITestOutputHelper output)
{
    public static TheoryData<ResizeFilter, int, int> Cases()
    {
        var data = new TheoryData<ResizeFilter, int, int>();
        foreach (var filter in Enum.GetValues<ResizeFilter>())
            foreach (var (w, h) in new[] { (11, 9), (50, 40), (23, 7), (8, 17), (5, 3) })
                data.Add(filter, w, h);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RgbResizeMatchesPillow(ResizeFilter filter, int width, int height)
    {
        var source = SDImage.Load(ImagingTestData.Fixture("resize_source.png"));
        var expected = SDImage.Load(ImagingTestData.Fixture($"resize_{filter.ToString().ToLowerInvariant()}_{width}x{height}.png"));
        var actual = source.Resize(width, height, filter);
        Assert.Equal((width, height), (actual.Width, actual.Height));
        Assert.Equal((width, height), (actual.Record.Width, actual.Record.Height));
        var maxDiff = expected.Pixels.Zip(actual.Pixels, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{filter} {width}x{height}: max diff {maxDiff}");
        Assert.Equal(expected.Pixels, actual.Pixels);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GrayResizeMatchesPillow(ResizeFilter filter, int width, int height)
    {
        var source = GrayImage.Load(ImagingTestData.Fixture("gray_L.png"));
        var expected = GrayImage.Load(ImagingTestData.Fixture($"resize_L_{filter.ToString().ToLowerInvariant()}_{width}x{height}.png"));
        var actual = filter == ResizeFilter.Nearest ? source.ResizeNearest(width, height) : source.Resize(width, height, filter);
        Assert.Equal(expected.Values, actual.Values);
    }

    [Fact]
    public void RgbToGrayMatchesPillowConvertL()
    {
        var source = SDImage.Load(ImagingTestData.Fixture("resize_source.png"));
        var expected = GrayImage.Load(ImagingTestData.Fixture("gray_L.png"));
        Assert.Equal(expected.Values, source.ToGray().Values);
    }

    [Fact]
    public void ResizeToTheSameSizeIsACopy()
    {
        var source = SDImage.Load(ImagingTestData.Fixture("resize_source.png"));
        var same = source.Resize(source.Width, source.Height, ResizeFilter.Lanczos);
        Assert.Equal(source.Pixels, same.Pixels);
        Assert.NotSame(source.Pixels, same.Pixels);
    }

    [Fact]
    public void SixteenBitGrayRefusesBlendingFilters()
    {
        var depth = new GrayImage(2, 2, 16, [0, 1000, 40000, 65535]);
        Assert.Equal(new ushort[] { 0, 0, 1000, 1000, 0, 0, 1000, 1000, 40000, 40000, 65535, 65535, 40000, 40000, 65535, 65535 },
            depth.ResizeNearest(4, 4).Values);
        Assert.Throws<NotSupportedException>(() => depth.Resize(4, 4, ResizeFilter.Bicubic));
    }
}
