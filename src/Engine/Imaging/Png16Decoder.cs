using System.IO.Compression;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Decodes 16-bit grayscale PNGs (depth maps) at full precision: SkiaSharp would reduce them to 8 bits.
/// Only non-interlaced images; the chunk structure must already be validated by <see cref="PngChunks.Parse"/>.
/// </summary>
internal static class Png16Decoder
{
    public static bool Handles(PngHeader header) => header is { ColorType: 0, BitDepth: 16 };

    public static ushort[] Decode(
        ReadOnlySpan<byte> data, PngHeader header, IReadOnlyList<PngChunk> chunks, string? path)
    {
        if (!Handles(header)) throw new ArgumentException("Not a 16-bit grayscale PNG.", nameof(header));
        if (header.Interlace != 0)
            throw new ImageFormatException(path, "interlaced (Adam7) 16-bit grayscale PNGs are not supported.");

        const int bytesPerPixel = 2;
        var stride = checked(header.Width * bytesPerPixel);
        var rawLength = checked((long)(stride + 1) * header.Height);
        var idat = new MemoryStream();
        foreach (var chunk in chunks)
            if (chunk.Type == "IDAT") idat.Write(data.Slice(chunk.DataOffset, chunk.Length));
        idat.Position = 0;

        // Inflate exactly the bytes the header implies: a stream that would expand further is never read.
        var raw = new byte[rawLength];
        try
        {
            using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
            var total = 0;
            int read;
            while (total < raw.Length && (read = zlib.Read(raw, total, raw.Length - total)) > 0) total += read;
            if (total < raw.Length)
                throw new ImageFormatException(path, $"truncated: pixel data holds {total} of {raw.Length} bytes.");
        }
        catch (InvalidDataException e)
        {
            throw new ImageFormatException(path, "corrupt: pixel data does not inflate.", e);
        }

        var values = new ushort[(long)header.Width * header.Height];
        var previous = new byte[stride];
        var current = new byte[stride];
        for (var y = 0; y < header.Height; y++)
        {
            var rowStart = y * (stride + 1);
            var filter = raw[rowStart];
            Array.Copy(raw, rowStart + 1, current, 0, stride);
            Unfilter(filter, current, previous, bytesPerPixel, path, y);
            for (var x = 0; x < header.Width; x++)
                values[(long)y * header.Width + x] = (ushort)((current[2 * x] << 8) | current[2 * x + 1]); // big-endian
            (previous, current) = (current, previous);
        }
        return values;
    }

    /// <summary>Reverses the PNG row filter (None, Sub, Up, Average, Paeth) in place.</summary>
    private static void Unfilter(byte filter, byte[] row, byte[] previous, int bpp, string? path, int y)
    {
        switch (filter)
        {
            case 0:
                return;
            case 1:
                for (var i = bpp; i < row.Length; i++) row[i] += row[i - bpp];
                return;
            case 2:
                for (var i = 0; i < row.Length; i++) row[i] += previous[i];
                return;
            case 3:
                for (var i = 0; i < row.Length; i++)
                    row[i] += (byte)(((i >= bpp ? row[i - bpp] : 0) + previous[i]) >> 1);
                return;
            case 4:
                for (var i = 0; i < row.Length; i++)
                {
                    int a = i >= bpp ? row[i - bpp] : 0, b = previous[i], c = i >= bpp ? previous[i - bpp] : 0;
                    int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
                    row[i] += (byte)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
                }
                return;
            default:
                throw new ImageFormatException(path, $"corrupt: unknown row filter {filter} on row {y}.");
        }
    }
}
