using System.IO.Compression;
using System.Text;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>The header fields of a PNG (IHDR).</summary>
internal readonly record struct PngHeader(int Width, int Height, byte BitDepth, byte ColorType, byte Interlace);
