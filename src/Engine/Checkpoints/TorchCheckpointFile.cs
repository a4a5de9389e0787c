using System.IO.Compression;
using System.Numerics;
using System.Text;
using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>
/// A PyTorch checkpoint (<c>.ckpt</c>, <c>.pt</c>, <c>pytorch_model.bin</c>) in the zip layout <c>torch.save</c> has
/// written since 1.6: <c>&lt;top&gt;/data.pkl</c> (the object, as a pickle) and <c>&lt;top&gt;/data/&lt;key&gt;</c>
/// (one entry of raw bytes per storage). The pickle is read by <see cref="RestrictedUnpickler"/>, which never runs
/// code. Keys are the tensors of the <c>state_dict</c> entry (Lightning / original SD checkpoints) or of the top-level
/// dict when that is the state dict itself. Storages are read from the zip only when a tensor is read.
/// </summary>
public sealed class TorchCheckpointFile : ITensorFile
{
    private const long MaxPickleBytes = 1L << 30;
    // Deflate cannot expand data by more than about 1032:1, so a larger declared size is a lie.
    private const long MaxDeflateRatio = 1032;

    private readonly FileStream _stream;
    private readonly ZipArchive _zip;
    private readonly string _prefix;
    private readonly bool _bigEndian;
    private readonly Dictionary<string, TorchTensorRef> _tensors;
    private readonly Dictionary<string, int> _storageUsers;
    private readonly object _gate = new();
    private (string Key, Tensor Storage)? _lastStorage;

    private TorchCheckpointFile(string path, FileStream stream, ZipArchive zip, string prefix, bool bigEndian,
        Dictionary<string, TorchTensorRef> tensors, long? globalStep, IReadOnlyList<string> topLevelKeys)
    {
        Path = path;
        _stream = stream;
        _zip = zip;
        _prefix = prefix;
        _bigEndian = bigEndian;
        _tensors = tensors;
        GlobalStep = globalStep;
        TopLevelKeys = topLevelKeys;
        _storageUsers = tensors.Values.GroupBy(t => t.Storage.Key).ToDictionary(g => g.Key, g => g.Count());
    }

    public string Path { get; }

    public IReadOnlyCollection<string> Keys => _tensors.Keys;

    /// <summary>The checkpoint's <c>global_step</c> (training step) when it has one; SD 2.x 768-v checkpoints are
    /// told apart from 512-base ones partly by it.</summary>
    public long? GlobalStep { get; }

    /// <summary>String keys of the top-level dict (e.g. <c>state_dict</c>, <c>global_step</c>, <c>epoch</c>).</summary>
    public IReadOnlyList<string> TopLevelKeys { get; }

    /// <summary>Opens a zip-format torch checkpoint. Throws <see cref="UnsafeCheckpointException"/> when its pickle
    /// references anything beyond tensors and plain containers, <see cref="CheckpointFormatException"/> when it is
    /// malformed or in the legacy (pre-1.6) format.</summary>
    public static TorchCheckpointFile Open(string path)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            CheckMagic(path, stream);
            ZipArchive zip;
            try
            {
                zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            }
            catch (InvalidDataException e)
            {
                throw new CheckpointFormatException($"'{path}' is not a readable zip archive (truncated or damaged?): {e.Message}", e);
            }
            try
            {
                return OpenZip(path, stream, zip);
            }
            catch
            {
                zip.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static void CheckMagic(string path, FileStream stream)
    {
        Span<byte> head = stackalloc byte[4];
        int read = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        stream.Position = 0;
        if (read == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return;
        if (read >= 1 && head[0] == 0x80)
            throw new CheckpointFormatException(
                $"'{path}': legacy torch pickle format is not supported; re-save as safetensors. (It was written by " +
                "torch.save before PyTorch 1.6 or with _use_new_zipfile_serialization=False.)");
        throw new CheckpointFormatException($"'{path}' is not a PyTorch zip checkpoint (it does not start with a zip header).");
    }

    private static TorchCheckpointFile OpenZip(string path, FileStream stream, ZipArchive zip)
    {
        ZipArchiveEntry pickleEntry;
        try
        {
            // The top folder is named after the file torch.save wrote (often "archive"); find it by data.pkl.
            pickleEntry = zip.Entries
                .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                .SingleOrDefault() ?? throw new CheckpointFormatException($"'{path}' is a zip archive but has no <top>/data.pkl: not a torch checkpoint.");
        }
        catch (InvalidOperationException)
        {
            throw new CheckpointFormatException($"'{path}' has more than one top-level data.pkl.");
        }
        var prefix = pickleEntry.FullName[..^"data.pkl".Length];
        var bigEndian = ReadByteOrder(path, zip, prefix);

        if (pickleEntry.Length > MaxPickleBytes)
            throw new CheckpointFormatException($"'{path}': data.pkl declares {pickleEntry.Length} bytes, over the {MaxPickleBytes} limit.");
        var pickle = ReadEntry(path, pickleEntry, pickleEntry.Length);

        var storages = new Dictionary<string, TorchStorageRef>(StringComparer.Ordinal);
        var root = RestrictedUnpickler.Load(pickle, pid => LoadStorage(path, pid, storages));

        if (root is not PickleDict top)
            throw new CheckpointFormatException($"'{path}': the checkpoint holds {root?.GetType().Name ?? "None"}, not a dict of tensors.");
        var topLevelKeys = top.Items.Select(kv => kv.Key).OfType<string>().ToList();
        var stateDict = top.TryGet("state_dict", out var inner) && inner is PickleDict sd ? sd : top;
        var tensors = new Dictionary<string, TorchTensorRef>(StringComparer.Ordinal);
        foreach (var (key, value) in stateDict.Items)
            if (key is string name && value is TorchTensorRef tensor) tensors[name] = tensor;
        if (tensors.Count == 0)
            throw new CheckpointFormatException(
                $"'{path}' holds no tensors in its state dict (top-level keys: {string.Join(", ", topLevelKeys)}).");

        long? globalStep = top.TryGet("global_step", out var step) ? step switch
        {
            long l => l,
            BigInteger => throw new CheckpointFormatException($"'{path}': global_step {step} does not fit a 64-bit integer."),
            _ => null,
        } : null;

        foreach (var (name, tensor) in tensors) Validate(path, zip, prefix, name, tensor);
        return new TorchCheckpointFile(path, stream, zip, prefix, bigEndian, tensors, globalStep, topLevelKeys);
    }

    private static bool ReadByteOrder(string path, ZipArchive zip, string prefix)
    {
        var entry = zip.GetEntry(prefix + "byteorder");
        if (entry is null) return false; // written since torch 1.10; older files are little-endian
        if (entry.Length > 16) throw new CheckpointFormatException($"'{path}': byteorder entry is {entry.Length} bytes.");
        var text = Encoding.ASCII.GetString(ReadEntry(path, entry, entry.Length)).Trim();
        return text switch
        {
            "little" => false,
            "big" => true,
            _ => throw new CheckpointFormatException($"'{path}': unknown byteorder '{text}'."),
        };
    }

    private static TorchStorageRef LoadStorage(string path, PickleTuple pid, Dictionary<string, TorchStorageRef> storages)
    {
        // ('storage', <storage type>, key, location, numel)
        if (pid.Count != 5 || pid[0] is not "storage")
            throw new CheckpointFormatException($"'{path}': persistent id is not ('storage', type, key, location, numel).");
        if (pid[1] is not PickleGlobal type || !RestrictedUnpickler.TryGetStorageType(type, out var dtype))
            throw new UnsafeCheckpointException($"'{path}': persistent id names '{pid[1]}', which is not a storage type.",
                refusedGlobal: pid[1]?.ToString());
        if (pid[2] is not string key || key.Length == 0 || key.Contains('/') || key.Contains('\\') || key.Contains(".."))
            throw new CheckpointFormatException($"'{path}': storage key '{pid[2]}' is not a plain name.");
        if (pid[4] is not long numel || numel < 0)
            throw new CheckpointFormatException($"'{path}': storage '{key}' declares {pid[4]} elements.");
        var storage = new TorchStorageRef(key, dtype, pid[3] as string ?? "cpu", numel);
        if (storages.TryGetValue(key, out var seen))
        {
            if (seen.DType != dtype || seen.ElementCount != numel)
                throw new CheckpointFormatException($"'{path}': storage '{key}' is declared twice with different types or sizes.");
            return seen;
        }
        storages[key] = storage;
        return storage;
    }

    private static void Validate(string path, ZipArchive zip, string prefix, string name, TorchTensorRef tensor)
    {
        var storage = tensor.Storage;
        var elementSize = ElementSize(storage.DType);
        var entry = zip.GetEntry(prefix + "data/" + storage.Key)
            ?? throw new CheckpointFormatException($"'{path}': tensor '{name}' needs storage '{storage.Key}', which is missing from the archive.");
        long storageBytes = CheckedBytes(path, name, storage.ElementCount, elementSize);
        if (storageBytes > entry.Length)
            throw new CheckpointFormatException(
                $"'{path}': storage '{storage.Key}' of tensor '{name}' declares {storageBytes} bytes but its entry holds {entry.Length}.");
        if (entry.CompressedLength * MaxDeflateRatio < entry.Length && entry.Length > 1 << 20)
            throw new CheckpointFormatException($"'{path}': storage entry '{storage.Key}' declares an impossible size.");
        if (storageBytes > Array.MaxLength)
            throw new CheckpointFormatException($"'{path}': storage '{storage.Key}' of {storageBytes} bytes is larger than one read can hold.");

        if (tensor.StorageOffset < 0) throw new CheckpointFormatException($"'{path}': tensor '{name}' has a negative storage offset.");
        long lastElement = tensor.StorageOffset; // index of the furthest element the view touches
        long elements = 1;
        for (int i = 0; i < tensor.Sizes.Length; i++)
        {
            long size = tensor.Sizes[i], stride = tensor.Strides[i];
            if (size < 0 || stride < 0)
                throw new CheckpointFormatException($"'{path}': tensor '{name}' has size {size} / stride {stride} in dim {i}.");
            try
            {
                elements = checked(elements * size);
                if (size > 0) lastElement = checked(lastElement + (size - 1) * stride);
            }
            catch (OverflowException)
            {
                throw new CheckpointFormatException($"'{path}': tensor '{name}' declares a shape too large to address: [{string.Join(", ", tensor.Sizes)}].");
            }
        }
        if (elements > 0 && lastElement >= storage.ElementCount)
            throw new CheckpointFormatException(
                $"'{path}': tensor '{name}' of shape [{string.Join(", ", tensor.Sizes)}] reaches element {lastElement} " +
                $"but storage '{storage.Key}' holds {storage.ElementCount}.");
    }

    private static long CheckedBytes(string path, string name, long elements, long elementSize)
    {
        try
        {
            return checked(elements * elementSize);
        }
        catch (OverflowException)
        {
            throw new CheckpointFormatException($"'{path}': storage of tensor '{name}' declares {elements} elements, too many to address.");
        }
    }

    public long[] ShapeOf(string key) => (long[])Get(key).Sizes.Clone();

    public ScalarType DTypeOf(string key) => Get(key).Storage.DType;

    public Tensor Read(string key, ScalarType? dtype = null, Device? device = null)
    {
        var tensor = Get(key);
        lock (_gate)
        {
            var storage = tensor.Storage;
            bool shared = _storageUsers[storage.Key] > 1;
            bool wholeStorage = tensor.StorageOffset == 0 && IsContiguous(tensor) &&
                tensor.Sizes.Aggregate(1L, (a, b) => a * b) == storage.ElementCount;

            using var scope = torch.NewDisposeScope();
            Tensor flat;
            if (_lastStorage is { } last && last.Key == storage.Key) flat = last.Storage;
            else
            {
                flat = LoadStorageTensor(storage, key);
                if (shared)
                {
                    // Views into one storage usually come in a row (e.g. slices of a fused weight): keep it.
                    _lastStorage?.Storage.Dispose();
                    flat.DetachFromDisposeScope();
                    _lastStorage = (storage.Key, flat);
                }
            }

            Tensor result;
            if (wholeStorage && !shared) result = flat.reshape(tensor.Sizes);
            else
            {
                // An independent, contiguous copy: contiguous() copies a strided view, clone() a contiguous one.
                var view = flat.as_strided(tensor.Sizes, tensor.Strides, tensor.StorageOffset);
                result = view.is_contiguous() ? view.clone() : view.contiguous();
            }
            if (dtype is { } target && target != result.dtype) result = result.to(target);
            if (device is not null) result = result.to(device);
            return result.MoveToOuterDisposeScope();
        }
    }

    private Tensor LoadStorageTensor(TorchStorageRef storage, string tensorKey)
    {
        var elementSize = ElementSize(storage.DType);
        var entry = _zip.GetEntry(_prefix + "data/" + storage.Key)!;
        var bytes = ReadEntry(Path, entry, storage.ElementCount * elementSize);
        if (_bigEndian && elementSize > 1)
            for (int i = 0; i < bytes.Length; i += elementSize) Array.Reverse(bytes, i, elementSize);
        var flat = torch.empty(new[] { storage.ElementCount }, storage.DType);
        if (bytes.Length > 0) flat.bytes = bytes;
        return flat;
    }

    private static byte[] ReadEntry(string path, ZipArchiveEntry entry, long count)
    {
        var buffer = new byte[count];
        try
        {
            using var input = entry.Open();
            int read = input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            if (read < buffer.Length)
                throw new CheckpointFormatException(
                    $"'{path}': entry '{entry.FullName}' ends after {read} of {buffer.Length} bytes (truncated file?).");
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointFormatException($"'{path}': entry '{entry.FullName}' cannot be read (damaged?): {e.Message}", e);
        }
        catch (IOException e) when (e is not CheckpointFormatException)
        {
            throw new CheckpointFormatException($"'{path}': entry '{entry.FullName}' cannot be read: {e.Message}", e);
        }
        return buffer;
    }

    private TorchTensorRef Get(string key) =>
        _tensors.TryGetValue(key, out var tensor) ? tensor : throw new KeyNotFoundException($"'{Path}' has no tensor '{key}'.");

    private static bool IsContiguous(TorchTensorRef tensor)
    {
        long expected = 1;
        for (int i = tensor.Sizes.Length - 1; i >= 0; i--)
        {
            if (tensor.Sizes[i] != 1 && tensor.Strides[i] != expected) return false;
            expected *= tensor.Sizes[i];
        }
        return true;
    }

    private static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a storage element type"),
    };

    public void Dispose()
    {
        lock (_gate)
        {
            _lastStorage?.Storage.Dispose();
            _lastStorage = null;
        }
        _zip.Dispose();
        _stream.Dispose();
    }
}
