using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>A safetensors file that breaks the format; the message names the file and, where known,
/// the tensor.</summary>
/// <remarks>Derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed.</remarks>
public sealed class SafeTensorsFormatException : IOException
{
    public SafeTensorsFormatException(string path, string? tensor, string problem, Exception? inner = null)
        : base(tensor is null ? $"{path}: {problem}" : $"{path}: tensor '{tensor}': {problem}", inner)
    {
        FilePath = path;
        TensorName = tensor;
    }

    public string FilePath { get; }
    public string? TensorName { get; }
}
