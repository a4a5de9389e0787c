using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Opens a single-file checkpoint as an <see cref="ITensorFile"/>, whichever of the two formats it is in: safetensors,
/// or a PyTorch zip checkpoint (<c>.ckpt</c>, read by <see cref="TorchCheckpointFile"/>, which never runs pickled
/// code). The format comes from the first bytes, not the extension, so a renamed file still opens.
/// </summary>
public static class CheckpointFiles
{
    /// <summary>The extensions <c>-Model</c> takes as a single-file checkpoint.</summary>
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".safetensors", ".ckpt", ".pt", ".pth" };

    /// <summary>Whether <paramref name="path"/> ends with one of <see cref="Extensions"/> (case-insensitive).</summary>
    public static bool HasCheckpointExtension(string path) =>
        Extensions.Any(e => path.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    /// <summary>Opens <paramref name="path"/>: a zip (<c>PK\x03\x04</c>) or legacy pickle (<c>0x80</c>) start means a
    /// torch checkpoint, anything else is read as safetensors.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="SafeTensorsFormatException">Not valid safetensors.</exception>
    /// <exception cref="CheckpointFormatException">A malformed torch checkpoint (zip or legacy layout)
    /// (<see cref="UnsafeCheckpointException"/> when its pickle asks for code).</exception>
    public static ITensorFile Open(string path)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint not found: {path}", path);
        return ReadsAsSafeTensors(path) ? SafeTensorsFile.Open(path) : TorchCheckpointFile.Open(path);
    }

    /// <summary>Whether <see cref="Open"/> reads <paramref name="path"/> (an existing file) as safetensors: a zip
    /// (<c>PK\x03\x04</c>) or legacy pickle (<c>0x80</c>) start means a torch checkpoint, anything else is read as
    /// safetensors. Reads the first 9 bytes only.</summary>
    public static bool ReadsAsSafeTensors(string path)
    {
        Span<byte> head = stackalloc byte[9];
        int read;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1))
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        // A safetensors header length below 4 GiB followed by '{' is safetensors, even when its low byte is 0x80 (a
        // header of 128 + 256·k bytes, which a pickle's PROTO opcode would otherwise be mistaken for).
        bool safetensors = read == 9 && head[4] == 0 && head[5] == 0 && head[6] == 0 && head[7] == 0 && head[8] == '{';
        bool zip = read >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
        bool legacyPickle = !safetensors && read >= 1 && head[0] == 0x80;
        return !(zip || legacyPickle);
    }

    /// <summary>The training step a torch checkpoint records (<c>global_step</c>); safetensors files
    /// have none.</summary>
    public static long? GlobalStep(ITensorFile file) => (file as TorchCheckpointFile)?.GlobalStep;
}
