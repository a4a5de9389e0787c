using System.IO.Compression;
using System.Text;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>One PNG chunk: its 4-letter type and where its data lies in the file.</summary>
internal readonly record struct PngChunk(string Type, int DataOffset, int Length);
