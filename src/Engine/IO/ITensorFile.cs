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

    /// <summary>
    /// Reads <paramref name="keys"/> as new CPU tensors of <paramref name="dtype"/>, in order, each the way the format
    /// reads fastest (safetensors: in parallel, straight into each tensor's storage). With
    /// <paramref name="shareFileMemory"/>, a tensor already stored in <paramref name="dtype"/> may instead view a
    /// copy-on-write mapping of the file: no copy, and a write to it never reaches the file. On failure no tensor is
    /// left allocated.
    /// </summary>
    Tensor[] ReadMany(IReadOnlyList<string> keys, ScalarType dtype, bool shareFileMemory = false);
}
