using System.Buffers.Binary;
using System.IO.Compression;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Encodes 16-bit grayscale PNGs (depth maps) at full precision, the counterpart of <see cref="Png16Decoder"/>:
/// SkiaSharp encodes 8 bits per channel only. Rows use the Up filter (smooth depth compresses well that way).
/// </summary>
internal static class Png16Encoder
{
    /// <summary>A complete PNG (signature, IHDR, IDAT, IEND) of <paramref name="image"/>, which must
    /// be 16-bit.</summary>
    public static byte[] Encode(GrayImage image)
    {
        if (image.BitDepth != 16)
            throw new ArgumentException($"Expected a 16-bit image, got {image.BitDepth}-bit.", nameof(image));
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), image.Height);
        header[8] = 16; // bit depth; colour type 0 (gray), compression 0, filter 0, no interlace

        using var output = new MemoryStream();
        output.Write(PngChunks.Signature);
        output.Write(PngChunks.BuildChunk("IHDR", header));
        output.Write(PngChunks.BuildChunk("IDAT", Compress(image)));
        output.Write(PngChunks.BuildChunk("IEND", ReadOnlySpan<byte>.Empty));
        return output.ToArray();
    }

    private static byte[] Compress(GrayImage image)
    {
        int stride = checked(image.Width * 2);
        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            var previous = new byte[stride];
            var current = new byte[stride];
            var filtered = new byte[stride + 1];
            filtered[0] = 2; // Up
            for (var y = 0; y < image.Height; y++)
            {
                for (var x = 0; x < image.Width; x++)
                    BinaryPrimitives.WriteUInt16BigEndian(
                        current.AsSpan(2 * x), image.Values[(long)y * image.Width + x]);
                for (var i = 0; i < stride; i++) filtered[i + 1] = (byte)(current[i] - previous[i]);
                zlib.Write(filtered);
                (previous, current) = (current, previous);
            }
        }
        return compressed.ToArray();
    }
}
