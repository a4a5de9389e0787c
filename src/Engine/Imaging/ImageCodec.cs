using System.Runtime.InteropServices;
using System.Text.Json;
using SkiaSharp;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Reads and writes images. PNGs carry the generation record twice: AUTOMATIC1111's <c>parameters</c> text (read
/// by most tools) and the full record as JSON in an iTXt chunk <see cref="RecordKeyword"/>. Every PNG is checked
/// (chunk lengths, CRCs, size limits) before any pixel is decoded; pixels are decoded and encoded by SkiaSharp.
/// </summary>
public static class ImageCodec
{
    /// <summary>Keyword of the iTXt chunk that holds <see cref="GenerationRecord.ToJson"/>.</summary>
    public const string RecordKeyword = "sd-record";

    /// <summary>Reads an image file: PNG with its record, or JPEG/WebP/BMP/GIF (first frame) with an
    /// empty record.</summary>
    /// <exception cref="ImageFormatException">Missing, unreadable, not an image, corrupt, or over the
    /// size limits.</exception>
    public static SDImage Read(string path)
    {
        var fullPath = Path.GetFullPath(path);
        var image = Decode(ReadBytes(fullPath), fullPath);
        return image;
    }

    /// <summary>Decodes image bytes; <paramref name="path"/> only names the source in errors and the result.</summary>
    public static SDImage Decode(byte[] data, string? path = null)
    {
        GenerationRecord? record = null;
        GrayImage? gray16 = null;
        if (PngChunks.HasSignature(data))
        {
            var (header, chunks) = PngChunks.Parse(data, path);
            record = ReadRecord(PngChunks.ReadText(data, chunks, path), path);
            // A 16-bit depth map keeps its values (SkiaSharp below would keep 8 bits of them).
            if (Png16Decoder.Handles(header) && header.Interlace == 0)
                gray16 = new GrayImage(
                    header.Width, header.Height, 16, Png16Decoder.Decode(data, header, chunks, path));
        }
        if (gray16 is not null)
        {
            record ??= new GenerationRecord();
            if (record.Width == 0 && record.Height == 0) (record.Width, record.Height) = (gray16.Width, gray16.Height);
            return SDImage.FromGray16(gray16, record, path);
        }
        var (width, height, rgba) = DecodeRgba(data, path);
        var rgb = new byte[(long)width * height * 3];
        for (long i = 0, j = 0; i < rgb.LongLength; i += 3, j += 4)
        {
            rgb[i] = rgba[j];
            rgb[i + 1] = rgba[j + 1];
            rgb[i + 2] = rgba[j + 2];
        }
        record ??= new GenerationRecord();
        if (record.Width == 0 && record.Height == 0) (record.Width, record.Height) = (width, height);
        return new SDImage(width, height, rgb, record, path);
    }

    /// <summary>
    /// Reads a mask or depth map. A 16-bit grayscale PNG keeps its 16 bits; anything else becomes 8-bit luma as
    /// Pillow's convert("L") computes it (a grayscale file keeps its values).
    /// </summary>
    public static GrayImage ReadGray(string path)
    {
        var fullPath = Path.GetFullPath(path);
        return DecodeGray(ReadBytes(fullPath), fullPath);
    }

    public static GrayImage DecodeGray(byte[] data, string? path = null)
    {
        if (PngChunks.HasSignature(data))
        {
            var (header, chunks) = PngChunks.Parse(data, path);
            if (Png16Decoder.Handles(header))
                return new GrayImage(header.Width, header.Height, 16, Png16Decoder.Decode(data, header, chunks, path));
        }
        return Decode(data, path).ToGray();
    }

    /// <summary>PNG bytes with the record embedded (A1111 <c>parameters</c> and the JSON record). An image with
    /// <see cref="SDImage.Gray16"/> values is a 16-bit grayscale PNG with the JSON record only (it has no generation
    /// parameters for AUTOMATIC1111's text).</summary>
    public static byte[] EncodePng(SDImage image)
    {
        if (image.Gray16 is { } gray)
            return PngChunks.InsertAfterHeader(Png16Encoder.Encode(gray),
                [PngChunks.BuildTextChunk(RecordKeyword, image.Record.ToJson(), forceInternational: true)]);
        var rgba = new byte[(long)image.Width * image.Height * 4];
        for (long i = 0, j = 0; j < rgba.LongLength; i += 3, j += 4)
        {
            rgba[j] = image.Pixels[i];
            rgba[j + 1] = image.Pixels[i + 1];
            rgba[j + 2] = image.Pixels[i + 2];
            rgba[j + 3] = 255;
        }
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        byte[] png;
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            using var pixmap = new SKPixmap(info, handle.AddrOfPinnedObject(), image.Width * 4);
            using var encoded = pixmap.Encode(SKPngEncoderOptions.Default)
                ?? throw new InvalidOperationException(
                    $"SkiaSharp could not encode a {image.Width}x{image.Height} PNG.");
            png = encoded.ToArray();
        }
        finally
        {
            handle.Free();
        }
        return PngChunks.InsertAfterHeader(png,
        [
            PngChunks.BuildTextChunk(A1111Parameters.Keyword, A1111Parameters.Format(image.Record)),
            PngChunks.BuildTextChunk(RecordKeyword, image.Record.ToJson(), forceInternational: true),
        ]);
    }

    /// <summary>Encodes <paramref name="image"/> as PNG and writes it atomically (never a half-written file).</summary>
    public static void SavePng(SDImage image, string path) => AtomicFile.Write(path, EncodePng(image));

    private static byte[] ReadBytes(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            if (stream.Length > ImageLimits.MaxFileBytes)
                throw new ImageFormatException(
                    path, $"file is {stream.Length} bytes, over the limit of {ImageLimits.MaxFileBytes}.");
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ImageFormatException(path, e.Message, e);
        }
    }

    private static GenerationRecord? ReadRecord(Dictionary<string, string> texts, string? path)
    {
        if (texts.TryGetValue(RecordKeyword, out var json))
        {
            try
            {
                return GenerationRecord.FromJson(json);
            }
            catch (JsonException e)
            {
                throw new ImageFormatException(path, $"its '{RecordKeyword}' record is not valid: {e.Message}", e);
            }
        }
        return texts.TryGetValue(A1111Parameters.Keyword, out var parameters)
            ? A1111Parameters.Parse(parameters) : null;
    }

    /// <summary>Decodes to unpremultiplied RGBA with no colour management (as Pillow), after
    /// checking the size.</summary>
    private static (int Width, int Height, byte[] Rgba) DecodeRgba(byte[] data, string? path)
    {
        using var skData = SKData.CreateCopy(data);
        using var codec = SKCodec.Create(skData)
            ?? throw new ImageFormatException(path, "not a supported image format (PNG, JPEG, WebP, BMP, GIF).");
        var (width, height) = (codec.Info.Width, codec.Info.Height);
        ImageLimits.CheckDimensions(width, height, path);
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)width * height * 4];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            var result = codec.GetPixels(info, handle.AddrOfPinnedObject());
            if (result != SKCodecResult.Success)
                throw new ImageFormatException(path, result == SKCodecResult.IncompleteInput
                    ? "truncated: the pixel data ends early."
                    : $"pixels could not be decoded ({result}).");
        }
        finally
        {
            handle.Free();
        }
        return (width, height, rgba);
    }
}
