using PSStableDiffusion.Engine.Runtime;
using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>A single-channel image: a mask (8-bit) or a depth map (8- or 16-bit), row-major values.</summary>
public sealed class GrayImage
{
    public GrayImage(int width, int height, int bitDepth, ushort[] values)
    {
        if (bitDepth is not (8 or 16))
            throw new ArgumentOutOfRangeException(nameof(bitDepth), bitDepth, "Bit depth must be 8 or 16.");
        ImageLimits.CheckDimensions(width, height, null);
        if (values.LongLength != (long)width * height)
            throw new ArgumentException($"{values.LongLength} values do not fill {width}x{height}.", nameof(values));
        if (bitDepth == 8 && values.Any(v => v > 255))
            throw new ArgumentException("An 8-bit image holds values up to 255.", nameof(values));
        Width = width;
        Height = height;
        BitDepth = bitDepth;
        Values = values;
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>8 or 16.</summary>
    public int BitDepth { get; }

    /// <summary>Row-major values, 0 .. <see cref="MaxValue"/>.</summary>
    public ushort[] Values { get; }

    public int MaxValue => (1 << BitDepth) - 1;

    /// <summary>Reads a mask or depth map; see <see cref="ImageCodec.ReadGray(string)"/>.</summary>
    public static GrayImage Load(string path) => ImageCodec.ReadGray(path);

    /// <summary>
    /// [1, H, W]: the raw values (a depth map as diffusers receives it), or with <paramref name="normalize"/>
    /// divided by <see cref="MaxValue"/> (a mask in [0, 1], as diffusers' mask processor makes it).
    /// </summary>
    public Tensor ToTensor(bool normalize = false, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var raw = tensor(Values.Select(v => (int)v).ToArray(), [1, Height, Width], ScalarType.Int32); // [1, H, W]
        var result = raw.to(ScalarType.Float32);
        if (normalize) result = result.ScalarSafe() / (float)MaxValue;
        return result.to(dtype, device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>The negative: white where this is black (an inverted mask repaints what this one keeps).</summary>
    public GrayImage Inverted() =>
        new(Width, Height, BitDepth, Values.Select(value => (ushort)(MaxValue - value)).ToArray());

    /// <summary>Nearest-neighbour resize (Pillow's sampling positions); values are never blended.</summary>
    public GrayImage ResizeNearest(int width, int height)
    {
        ImageLimits.CheckDimensions(width, height, null);
        return new GrayImage(width, height, BitDepth, Resampler.Nearest(Values, Width, Height, width, height));
    }

    /// <summary>Resize with any filter; blending filters need an 8-bit image.</summary>
    public GrayImage Resize(int width, int height, ResizeFilter filter)
    {
        if (filter == ResizeFilter.Nearest) return ResizeNearest(width, height);
        if (BitDepth != 8)
            throw new NotSupportedException(
                $"{filter} resizing of {BitDepth}-bit images is not supported; use Nearest.");
        var bytes = Values.Select(v => (byte)v).ToArray();
        var resized = Resampler.Resize(bytes, Width, Height, 1, width, height, filter);
        return new GrayImage(width, height, 8, resized.Select(b => (ushort)b).ToArray());
    }

    /// <summary>SHA-256 (hex) of the size, depth and values: identifies a mask or depth input in a record.</summary>
    public string ComputeContentHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.ASCII.GetBytes($"gray{BitDepth}:{Width}x{Height}:"));
        var bytes = new byte[Values.Length * 2];
        for (var i = 0; i < Values.Length; i++)
            (bytes[2 * i], bytes[2 * i + 1]) = ((byte)(Values[i] >> 8), (byte)Values[i]);
        sha.AppendData(bytes);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
