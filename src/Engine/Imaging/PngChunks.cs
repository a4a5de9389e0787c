using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Low-level PNG structure: validated chunk walking (bounded lengths, CRCs, IHDR first, IEND last), text chunks
/// (tEXt, zTXt, iTXt) read and written. Pixels are left to SkiaSharp (or <see cref="Png16Decoder"/>).
/// </summary>
internal static class PngChunks
{
    public static ReadOnlySpan<byte> Signature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static bool HasSignature(ReadOnlySpan<byte> data) => data.Length >= 8 && data[..8].SequenceEqual(Signature);

    /// <summary>Walks every chunk, checking structure and CRCs, and the header's size limits.</summary>
    /// <exception cref="ImageFormatException">Truncated, corrupt, or over the limits.</exception>
    public static (PngHeader Header, List<PngChunk> Chunks) Parse(ReadOnlySpan<byte> data, string? path)
    {
        if (!HasSignature(data)) throw new ImageFormatException(path, "not a PNG file (bad signature).");
        var chunks = new List<PngChunk>();
        var offset = 8;
        var sawEnd = false;
        while (offset < data.Length)
        {
            if (data.Length - offset < 12)
                throw new ImageFormatException(path, $"truncated: chunk header at byte {offset} is incomplete.");
            var length = BinaryPrimitives.ReadUInt32BigEndian(data[offset..]);
            var typeBytes = data.Slice(offset + 4, 4);
            foreach (var b in typeBytes)
                if (!(b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z'))
                    throw new ImageFormatException(path, $"corrupt: invalid chunk type at byte {offset}.");
            var type = Encoding.ASCII.GetString(typeBytes);
            if (length > int.MaxValue || length > (uint)(data.Length - offset - 12))
                throw new ImageFormatException(
                    path, $"truncated: chunk {type} at byte {offset} claims {length} bytes, the file ends sooner.");
            var dataOffset = offset + 8;
            var body = data.Slice(dataOffset, (int)length);
            var storedCrc = BinaryPrimitives.ReadUInt32BigEndian(data[(dataOffset + (int)length)..]);
            if (Crc32.Compute(typeBytes, body) != storedCrc)
                throw new ImageFormatException(path, $"corrupt: CRC mismatch in chunk {type} at byte {offset}.");
            if (chunks.Count == 0 && type != "IHDR")
                throw new ImageFormatException(path, $"corrupt: first chunk is {type}, not IHDR.");
            chunks.Add(new PngChunk(type, dataOffset, (int)length));
            offset = dataOffset + (int)length + 4;
            if (type == "IEND") { sawEnd = true; break; }
        }
        if (chunks.Count == 0) throw new ImageFormatException(path, "truncated: no chunks after the signature.");
        if (!sawEnd) throw new ImageFormatException(path, "truncated: no IEND chunk.");

        var ihdr = chunks[0];
        if (ihdr.Length != 13) throw new ImageFormatException(path, $"corrupt: IHDR has {ihdr.Length} bytes, not 13.");
        var h = data.Slice(ihdr.DataOffset, 13);
        var width = BinaryPrimitives.ReadUInt32BigEndian(h);
        var height = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
        ImageLimits.CheckDimensions(width, height, path);
        if (!chunks.Any(c => c.Type == "IDAT"))
            throw new ImageFormatException(path, "corrupt: no IDAT (pixel data) chunk.");
        return (new PngHeader((int)width, (int)height, h[8], h[9], h[12]), chunks);
    }

    /// <summary>
    /// Text chunks by keyword (first wins), decoded: tEXt and zTXt as Latin-1, iTXt as UTF-8. Chunks that are
    /// malformed or larger than <see cref="ImageLimits.MaxTextBytes"/> are refused.
    /// </summary>
    public static Dictionary<string, string> ReadText(
        ReadOnlySpan<byte> data, IEnumerable<PngChunk> chunks, string? path)
    {
        var texts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var chunk in chunks)
        {
            if (chunk.Type is not ("tEXt" or "zTXt" or "iTXt")) continue;
            var body = data.Slice(chunk.DataOffset, chunk.Length);
            var nul = body.IndexOf((byte)0);
            if (nul is < 1 or > 79)
                throw new ImageFormatException(path, $"corrupt: {chunk.Type} chunk has an invalid keyword.");
            var keyword = Encoding.Latin1.GetString(body[..nul]);
            var rest = body[(nul + 1)..];
            string text;
            switch (chunk.Type)
            {
                case "tEXt":
                    CheckTextSize(rest.Length, keyword, path);
                    text = Encoding.Latin1.GetString(rest);
                    break;
                case "zTXt":
                    if (rest.Length < 1 || rest[0] != 0)
                        throw new ImageFormatException(
                            path, $"corrupt: zTXt '{keyword}' has an unknown compression method.");
                    text = Encoding.Latin1.GetString(Inflate(rest[1..], keyword, path));
                    break;
                default: // iTXt: flag, method, language\0, translated keyword\0, text
                    if (rest.Length < 2)
                        throw new ImageFormatException(path, $"corrupt: iTXt '{keyword}' is truncated.");
                    var compressed = rest[0] != 0;
                    if (compressed && rest[1] != 0)
                        throw new ImageFormatException(
                            path, $"corrupt: iTXt '{keyword}' has an unknown compression method.");
                    var afterFlags = rest[2..];
                    var languageEnd = afterFlags.IndexOf((byte)0);
                    if (languageEnd < 0)
                        throw new ImageFormatException(path, $"corrupt: iTXt '{keyword}' has no language tag end.");
                    var afterLanguage = afterFlags[(languageEnd + 1)..];
                    var translatedEnd = afterLanguage.IndexOf((byte)0);
                    if (translatedEnd < 0)
                        throw new ImageFormatException(
                            path, $"corrupt: iTXt '{keyword}' has no translated keyword end.");
                    var payload = afterLanguage[(translatedEnd + 1)..];
                    if (!compressed) CheckTextSize(payload.Length, keyword, path);
                    var utf8 = compressed ? Inflate(payload, keyword, path) : payload.ToArray();
                    try
                    {
                        text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(utf8);
                    }
                    catch (DecoderFallbackException e)
                    {
                        throw new ImageFormatException(path, $"corrupt: iTXt '{keyword}' is not valid UTF-8.", e);
                    }
                    break;
            }
            texts.TryAdd(keyword, text);
        }
        return texts;
    }

    private static void CheckTextSize(int length, string keyword, string? path)
    {
        if (length > ImageLimits.MaxTextBytes)
            throw new ImageFormatException(
                path, $"text chunk '{keyword}' holds {length} bytes, over the limit of {ImageLimits.MaxTextBytes}.");
    }

    /// <summary>zlib-inflates at most <see cref="ImageLimits.MaxTextBytes"/> bytes; more is
    /// refused, not read.</summary>
    private static byte[] Inflate(ReadOnlySpan<byte> compressed, string keyword, string? path)
    {
        try
        {
            using var input = new MemoryStream(compressed.ToArray());
            using var zlib = new ZLibStream(input, CompressionMode.Decompress);
            var buffer = new byte[ImageLimits.MaxTextBytes + 1];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = zlib.Read(buffer, total, buffer.Length - total)) > 0) total += read;
            CheckTextSize(total, keyword, path);
            return buffer[..total];
        }
        catch (InvalidDataException e)
        {
            throw new ImageFormatException(path, $"corrupt: compressed text '{keyword}' does not inflate.", e);
        }
    }

    /// <summary>Builds a chunk: length, type, data, CRC.</summary>
    public static byte[] BuildChunk(string type, ReadOnlySpan<byte> body)
    {
        var chunk = new byte[12 + body.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)body.Length);
        Encoding.ASCII.GetBytes(type, chunk.AsSpan(4, 4));
        body.CopyTo(chunk.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(
            chunk.AsSpan(8 + body.Length), Crc32.Compute(chunk.AsSpan(4, 4 + body.Length)));
        return chunk;
    }

    /// <summary>
    /// A text chunk: tEXt when <paramref name="text"/> is Latin-1, otherwise an uncompressed iTXt (UTF-8), as PIL
    /// (and so AUTOMATIC1111) does; <paramref name="forceInternational"/> always writes iTXt.
    /// </summary>
    public static byte[] BuildTextChunk(string keyword, string text, bool forceInternational = false)
    {
        if (keyword.Length is < 1 or > 79 || keyword.Any(c => c < 32 || c > 126))
            throw new ArgumentException(
                $"PNG text keyword '{keyword}' must be 1-79 printable ASCII characters.", nameof(keyword));
        var keywordBytes = Encoding.ASCII.GetBytes(keyword);
        if (!forceInternational && text.All(c => c <= '\u00FF'))
            return BuildChunk("tEXt", [.. keywordBytes, 0, .. Encoding.Latin1.GetBytes(text)]);
        // keyword \0, compression flag 0, method 0, empty language \0, empty translated keyword \0, UTF-8 text
        return BuildChunk("iTXt", [.. keywordBytes, 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(text)]);
    }

    /// <summary>Inserts <paramref name="chunks"/> right after IHDR of a well-formed PNG.</summary>
    public static byte[] InsertAfterHeader(ReadOnlySpan<byte> png, IEnumerable<byte[]> chunks)
    {
        if (!HasSignature(png) || png.Length < 33 || !png.Slice(12, 4).SequenceEqual("IHDR"u8))
            throw new ArgumentException("Not a PNG that starts with IHDR.", nameof(png));
        const int afterHeader = 8 + 12 + 13;
        using var output = new MemoryStream(png.Length + 4096);
        output.Write(png[..afterHeader]);
        foreach (var chunk in chunks) output.Write(chunk);
        output.Write(png[afterHeader..]);
        return output.ToArray();
    }
}
