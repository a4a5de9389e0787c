using PSStableDiffusion.Engine.Runtime;
using System.Security.Cryptography;
using PSStableDiffusion.Engine.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine;

/// <summary>An RGB image with the record of how it was made.</summary>
public sealed class SDImage
{
    public SDImage(int width, int height, byte[] pixels, GenerationRecord? record = null, string? sourcePath = null)
    {
        ImageLimits.CheckDimensions(width, height, sourcePath);
        if (pixels.LongLength != (long)width * height * 3)
            throw new ArgumentException(
                $"{pixels.LongLength} bytes do not fill a {width}x{height} RGB image ({(long)width * height * 3}).",
                nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
        Record = record ?? new GenerationRecord { Width = width, Height = height };
        SourcePath = sourcePath;
    }

    public int Width { get; }
    public int Height { get; }

    /// <summary>RGB bytes, row-major, channels last (H × W × 3).</summary>
    public byte[] Pixels { get; }

    public GenerationRecord Record { get; }

    /// <summary>The file this image was read from or last saved to, if any.</summary>
    public string? SourcePath { get; private set; }

    /// <summary>
    /// The 16-bit grayscale values this image stands for (a depth map from Get-SDDepthMap, or a 16-bit grayscale PNG
    /// read back), kept at full precision: saving writes a 16-bit PNG and a depth map reads them; <see cref="Pixels"/>
    /// then hold their 8-bit view. Null for ordinary RGB images.
    /// </summary>
    public GrayImage? Gray16 { get; private init; }

    /// <summary>An image of 16-bit grayscale values; its RGB <see cref="Pixels"/> are round(v · 255 / 65535).</summary>
    public static SDImage FromGray16(GrayImage gray, GenerationRecord? record = null, string? sourcePath = null)
    {
        if (gray.BitDepth != 16)
            throw new ArgumentException($"Expected a 16-bit gray image, got {gray.BitDepth}-bit.", nameof(gray));
        var pixels = new byte[(long)gray.Width * gray.Height * 3];
        for (long i = 0; i < gray.Values.LongLength; i++)
        {
            var level = (byte)((gray.Values[i] * 255 + 32767) / 65535);
            pixels[3 * i] = pixels[3 * i + 1] = pixels[3 * i + 2] = level;
        }
        return new SDImage(gray.Width, gray.Height, pixels, record, sourcePath) { Gray16 = gray };
    }

    public string Prompt => Record.Prompt;
    public string NegativePrompt => Record.NegativePrompt;
    public long Seed => Record.Seed;
    public int Steps => Record.Steps;
    public double GuidanceScale => Record.GuidanceScale;
    public string Scheduler => Record.Scheduler;
    public string? Model => Record.ModelName;
    public PipelineKind? PipelineKind => Record.PipelineKind;
    public int ImageIndex => Record.ImageIndex;
    public int BatchSize => Record.BatchSize;

    /// <summary>Reads PNG (with its record), JPEG, WebP or BMP; see <see cref="ImageCodec.Read(string)"/>.</summary>
    public static SDImage Load(string path) => ImageCodec.Read(path);

    /// <summary>Writes a PNG with the record embedded, atomically (see <see cref="ImageCodec.SavePng"/>).</summary>
    public void Save(string path)
    {
        ImageCodec.SavePng(this, path);
        SourcePath = Path.GetFullPath(path);
    }

    /// <summary>
    /// Converts a decoded image ([1, 3, H, W] or [3, H, W], values around [-1, 1]) the way diffusers
    /// post-processes it: clamp(x / 2 + 0.5, 0, 1) in the tensor's dtype, then in float32
    /// round(x · 255) with ties to even (numpy's rounding), to uint8, channels last.
    /// </summary>
    public static SDImage FromTensor(Tensor image, GenerationRecord? record = null)
    {
        using var scope = NewDisposeScope();
        var x = image;
        if (x.dim() == 4)
        {
            if (x.shape[0] != 1)
                throw new ArgumentException(
                    $"Expected one image, got a batch of {x.shape[0]}; use FromTensorBatch.", nameof(image));
            x = x[0]; // [3, H, W]
        }
        if (x.dim() != 3 || x.shape[0] != 3)
            throw new ArgumentException(
                $"Expected [1, 3, H, W] or [3, H, W], got [{string.Join(", ", image.shape)}].", nameof(image));
        if (!x.is_floating_point())
            throw new ArgumentException($"Expected a floating-point tensor, got {x.dtype}.", nameof(image));

        var unit = (x.ScalarSafe() / 2 + 0.5).Clamp(0, 1).Tensor.to(ScalarType.Float32).cpu(); // [3, H, W]
        // [H, W, 3]
        var bytes = (unit.ScalarSafe() * 255).Tensor.round().to(ScalarType.Byte).permute(1, 2, 0).contiguous();
        int height = (int)x.shape[1], width = (int)x.shape[2];
        return new SDImage(width, height, bytes.bytes.ToArray(), record);
    }

    /// <summary>One image per batch row of [B, 3, H, W]; <paramref name="records"/> gives row i its record.</summary>
    public static IReadOnlyList<SDImage> FromTensorBatch(Tensor images, Func<int, GenerationRecord>? records = null)
    {
        if (images.dim() != 4)
            throw new ArgumentException(
                $"Expected [B, 3, H, W], got [{string.Join(", ", images.shape)}].", nameof(images));
        var result = new List<SDImage>();
        for (var i = 0; i < images.shape[0]; i++)
        {
            using var row = images[i];
            result.Add(FromTensor(row, records?.Invoke(i)));
        }
        return result;
    }

    /// <summary>[1, 3, H, W] in [-1, 1] as diffusers pre-processes an input image: (x / 255) · 2 - 1,
    /// in float32.</summary>
    public Tensor ToTensor(ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var scope = NewDisposeScope();
        var bytes = tensor(Pixels, [Height, Width, 3], ScalarType.Byte); // [H, W, 3]
        var unit = bytes.permute(2, 0, 1).to(ScalarType.Float32).ScalarSafe() / 255.0f; // [3, H, W]
        var signed = (2 * unit - 1).Tensor.unsqueeze(0); // [1, 3, H, W]
        return signed.to(dtype, device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>The <see cref="Gray16"/> values when the image has them; otherwise luma as Pillow's convert("L")
    /// computes it: (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16.</summary>
    public GrayImage ToGray()
    {
        if (Gray16 is { } gray) return gray;
        var values = new ushort[(long)Width * Height];
        for (long i = 0; i < values.LongLength; i++)
            values[i] =
                (ushort)((Pixels[3 * i] * 19595 + Pixels[3 * i + 1] * 38470 + Pixels[3 * i + 2] * 7471 + 0x8000) >> 16);
        return new GrayImage(Width, Height, 8, values);
    }

    /// <summary>A resized copy (Pillow-compatible filters) of the RGB pixels (a <see cref="Gray16"/> image gives an
    /// 8-bit one); the record is copied with the new size.</summary>
    public SDImage Resize(int width, int height, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        var pixels = Resampler.Resize(Pixels, Width, Height, 3, width, height, filter);
        var record = Record.Clone();
        record.Width = width;
        record.Height = height;
        return new SDImage(width, height, pixels, record, SourcePath);
    }

    /// <summary>SHA-256 (hex) of the size and pixels: identifies a source image in a record.</summary>
    public string ComputeContentHash()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(System.Text.Encoding.ASCII.GetBytes($"rgb8:{Width}x{Height}:"));
        sha.AppendData(Pixels);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    public override string ToString() =>
        $"{Width}x{Height} seed {Seed}: {(Prompt.Length > 60 ? Prompt[..57] + "..." : Prompt)}";
}
