namespace PSStableDiffusion.Engine.Imaging;

/// <summary>Resampling filters, computed as Pillow's <c>Image.resize</c> computes them for 8-bit images.</summary>
public enum ResizeFilter
{
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
}
