using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>
/// A file of named tensors read on demand (safetensors, PyTorch checkpoints). Keys are the state-dict names.
/// </summary>
public interface ITensorFile : IDisposable
{
    /// <summary>The file this object reads.</summary>
    string Path { get; }

    /// <summary>Names of every tensor in the file.</summary>
    IReadOnlyCollection<string> Keys { get; }

    /// <summary>The shape of <paramref name="key"/>, without reading its data.</summary>
    long[] ShapeOf(string key);

    /// <summary>The element type stored in the file for <paramref name="key"/>.</summary>
    ScalarType DTypeOf(string key);

    /// <summary>Reads one tensor (an independent, contiguous copy), converted to <paramref name="dtype"/> and moved to
    /// <paramref name="device"/> when given.</summary>
    Tensor Read(string key, ScalarType? dtype = null, Device? device = null);
}
