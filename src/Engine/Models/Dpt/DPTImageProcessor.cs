using PSStableDiffusion.Engine.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTImageProcessor</c> for 8-bit RGB images: resize with Pillow's filter on 8-bit pixels (the size
/// from <c>size</c>, <c>keep_aspect_ratio</c> and <c>ensure_multiple_of</c>), rescale (in double, then float32, as
/// numpy does), normalise with the mean and std in float32.
/// </summary>
public sealed class DPTImageProcessor
{
    public DPTImageProcessor(DPTImageProcessorConfig config) => Config = config;

    public DPTImageProcessorConfig Config { get; }

    /// <summary>Loads <c>preprocessor_config.json</c> from a folder (diffusers' <c>feature_extractor/</c>).</summary>
    public static DPTImageProcessor FromPretrained(string folder) =>
        new(DPTImageProcessorConfig.FromFile(Path.Combine(folder, "preprocessor_config.json")));

    /// <summary>transformers' <c>get_resize_output_image_size</c>: the size (height, width) the image is
    /// resized to.</summary>
    public (int Height, int Width) OutputSize(int height, int width)
    {
        if (!Config.DoResize) return (height, width);
        var (targetHeight, targetWidth) = Config.TargetSize;
        double scaleHeight = (double)targetHeight / height, scaleWidth = (double)targetWidth / width;
        if (Config.KeepAspectRatio)
        {
            // Scale as little as possible: keep the side whose factor is closer to 1.
            if (Math.Abs(1 - scaleWidth) < Math.Abs(1 - scaleHeight)) scaleHeight = scaleWidth;
            else scaleWidth = scaleHeight;
        }
        return (ConstrainToMultiple(scaleHeight * height, Config.EnsureMultipleOf),
            ConstrainToMultiple(scaleWidth * width, Config.EnsureMultipleOf));
    }

    // Python's round() rounds halves to even, as Math.Round does; a result of 0 goes up to one multiple.
    private static int ConstrainToMultiple(double value, int multiple)
    {
        var x = (int)Math.Round(value / multiple, MidpointRounding.ToEven) * multiple;
        return x < 0 ? (int)Math.Ceiling(value / multiple) * multiple : x;
    }

    /// <param name="pixels">RGB bytes, H × W × 3</param>
    /// <returns>pixel_values, [1, 3, h, w] float32 on the CPU</returns>
    /// <exception cref="ArgumentException">The resized image would be empty (the image is too small for the
    /// settings).</exception>
    public Tensor Preprocess(byte[] pixels, int width, int height)
    {
        var (newHeight, newWidth) = OutputSize(height, width);
        if (newHeight <= 0 || newWidth <= 0)
            throw new ArgumentException(
                $"A {width}x{height} image resizes to {newWidth}x{newHeight} " +
                $"under the preprocessor settings; it is too small.", nameof(pixels));
        var resized = newWidth == width && newHeight == height
            ? pixels : Resampler.Resize(pixels, width, height, 3, newWidth, newHeight, Config.Filter);
        var values = new float[resized.Length];
        var mean = Config.ImageMean.Select(m => (float)m).ToArray();
        var std = Config.ImageStd.Select(s => (float)s).ToArray();
        long plane = (long)newWidth * newHeight;
        for (long i = 0; i < plane; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                byte raw = resized[i * 3 + c];
                float value = Config.DoRescale ? (float)(raw * Config.RescaleFactor) : raw;
                if (Config.DoNormalize) value = (value - mean[c]) / std[c];
                values[c * plane + i] = value;
            }
        }
        return torch.tensor(values, new long[] { 1, 3, newHeight, newWidth });
    }

    /// <inheritdoc cref="Preprocess(byte[], int, int)"/>
    public Tensor Preprocess(SDImage image) => Preprocess(image.Pixels, image.Width, image.Height);
}
