namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Separable convolution resampling of 8-bit interleaved pixels, following Pillow's algorithm so that resized
/// inputs match what diffusers' preprocessing (PIL) produces: the filter support widens with the downscale
/// factor (antialiasing), weights are normalised then fixed-point (22 fractional bits), the horizontal pass runs
/// first, and each pass rounds and clamps to 8 bits.
/// </summary>
internal static class Resampler
{
    private const int PrecisionBits = 32 - 8 - 2;

    public static byte[] Resize(
        byte[] pixels, int width, int height, int channels, int newWidth, int newHeight, ResizeFilter filter)
    {
        if (newWidth <= 0 || newHeight <= 0)
            throw new ArgumentOutOfRangeException(
                nameof(newWidth), $"Target size {newWidth}x{newHeight} must be positive.");
        ImageLimits.CheckDimensions(newWidth, newHeight, null);
        if (filter == ResizeFilter.Nearest) return Nearest(pixels, width, height, channels, newWidth, newHeight);

        var (support, kernel) = Kernel(filter);
        var result = pixels;
        var currentWidth = width;
        if (newWidth != width)
        {
            var (bounds, weights, size) = Coefficients(width, newWidth, support, kernel);
            result = Horizontal(result, width, height, channels, newWidth, bounds, weights, size);
            currentWidth = newWidth;
        }
        if (newHeight != height)
        {
            var (bounds, weights, size) = Coefficients(height, newHeight, support, kernel);
            result = Vertical(result, currentWidth, channels, newHeight, bounds, weights, size);
        }
        return ReferenceEquals(result, pixels) ? (byte[])pixels.Clone() : result;
    }

    /// <summary>Pillow's nearest neighbour: source index floor((i + 0.5) · in / out).</summary>
    public static byte[] Nearest(byte[] pixels, int width, int height, int channels, int newWidth, int newHeight)
    {
        var output = new byte[(long)newWidth * newHeight * channels];
        var xs = new int[newWidth];
        for (var x = 0; x < newWidth; x++) xs[x] = Math.Min(width - 1, (int)((x + 0.5) * width / newWidth));
        for (var y = 0; y < newHeight; y++)
        {
            var sy = Math.Min(height - 1, (int)((y + 0.5) * height / newHeight));
            for (var x = 0; x < newWidth; x++)
                Array.Copy(
                    pixels, ((long)sy * width + xs[x]) * channels, output,
                    ((long)y * newWidth + x) * channels, channels);
        }
        return output;
    }

    public static ushort[] Nearest(ushort[] values, int width, int height, int newWidth, int newHeight)
    {
        var output = new ushort[(long)newWidth * newHeight];
        for (var y = 0; y < newHeight; y++)
        {
            var sy = Math.Min(height - 1, (int)((y + 0.5) * height / newHeight));
            for (var x = 0; x < newWidth; x++)
                output[(long)y * newWidth + x] = values[(long)sy * width + Math.Min(
                    width - 1, (int)((x + 0.5) * width / newWidth))];
        }
        return output;
    }

    private static (double Support, Func<double, double> Kernel) Kernel(ResizeFilter filter) => filter switch
    {
        ResizeFilter.Bilinear => (1.0, x => Math.Abs(x) < 1.0 ? 1.0 - Math.Abs(x) : 0.0),
        ResizeFilter.Bicubic => (2.0, Bicubic),
        ResizeFilter.Lanczos => (3.0, x => x > -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0),
        _ => throw new ArgumentOutOfRangeException(nameof(filter), filter, "Unknown resize filter."),
    };

    // Keys' cubic convolution with a = -0.5.
    private static double Bicubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    /// <summary>For each output index: first input index and count, and fixed-point weights (size
    /// per output).</summary>
    private static (int[] Bounds, int[] Weights, int Size) Coefficients(
        int inSize, int outSize, double filterSupport, Func<double, double> kernel)
    {
        var scale = (double)inSize / outSize;
        var filterScale = Math.Max(scale, 1.0);
        var support = filterSupport * filterScale;
        var size = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * size];
        var k = new double[size];
        for (var xx = 0; xx < outSize; xx++)
        {
            var center = (xx + 0.5) * scale;
            var invScale = 1.0 / filterScale;
            var xmin = Math.Max(0, (int)(center - support + 0.5));
            var xmax = Math.Min(inSize, (int)(center + support + 0.5)) - xmin;
            var total = 0.0;
            for (var x = 0; x < xmax; x++)
            {
                k[x] = kernel((x + xmin - center + 0.5) * invScale);
                total += k[x];
            }
            for (var x = 0; x < size; x++)
            {
                var w = x < xmax && total != 0.0 ? k[x] / total : 0.0;
                // Pillow rounds half away from zero by truncating ±0.5.
                weights[xx * size + x] =
                    (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        return (bounds, weights, size);
    }

    private static byte Clip8(int accumulator)
    {
        var value = accumulator >> PrecisionBits;
        return value < 0 ? (byte)0 : value > 255 ? (byte)255 : (byte)value;
    }

    private static byte[] Horizontal(
        byte[] input, int width, int height, int channels, int newWidth, int[] bounds, int[] weights, int size)
    {
        var output = new byte[(long)newWidth * height * channels];
        for (var y = 0; y < height; y++)
        {
            var row = (long)y * width * channels;
            for (var xx = 0; xx < newWidth; xx++)
            {
                var xmin = bounds[xx * 2];
                var count = bounds[xx * 2 + 1];
                for (var c = 0; c < channels; c++)
                {
                    var acc = 1 << (PrecisionBits - 1);
                    for (var x = 0; x < count; x++)
                        acc += input[row + (long)(x + xmin) * channels + c] * weights[xx * size + x];
                    output[((long)y * newWidth + xx) * channels + c] = Clip8(acc);
                }
            }
        }
        return output;
    }

    private static byte[] Vertical(
        byte[] input, int width, int channels, int newHeight, int[] bounds, int[] weights, int size)
    {
        var rowLength = (long)width * channels;
        var output = new byte[rowLength * newHeight];
        for (var yy = 0; yy < newHeight; yy++)
        {
            var ymin = bounds[yy * 2];
            var count = bounds[yy * 2 + 1];
            for (long i = 0; i < rowLength; i++)
            {
                var acc = 1 << (PrecisionBits - 1);
                for (var y = 0; y < count; y++) acc += input[(y + ymin) * rowLength + i] * weights[yy * size + y];
                output[yy * rowLength + i] = Clip8(acc);
            }
        }
        return output;
    }
}
