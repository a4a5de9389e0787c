using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Checkpoints;

/// <summary>
/// A PyTorch checkpoint (<c>.ckpt</c>, <c>.pt</c>, <c>pytorch_model.bin</c>) as <c>torch.save</c> writes it: the zip
/// layout of PyTorch 1.6 and later (<c>&lt;top&gt;/data.pkl</c>, the object as a pickle;
/// <c>&lt;top&gt;/data/&lt;key&gt;</c>,
/// one entry of raw bytes per storage; <c>&lt;top&gt;/byteorder</c> since 2.1) or the legacy layout
/// (<c>_use_new_zipfile_serialization=False</c>, and PyTorch before 1.6: pickles back to back, then the storages; see
/// <see cref="OpenLegacy"/>). The pickle is read by <see cref="RestrictedUnpickler"/>, which never runs code. Keys are
/// the tensors of the <c>state_dict</c> entry (Lightning / original SD checkpoints) or of the top-level dict when that
/// is the state dict itself. Storages are read from the file only when a tensor is read.
/// </summary>
public sealed class TorchCheckpointFile : ITensorFile
{
    private const long MaxPickleBytes = 1L << 30;
    // Deflate cannot expand data by more than about 1032:1, so a larger declared size is a lie.
    private const long MaxDeflateRatio = 1032;
    // torch.save's legacy header: the magic number, then the protocol version, as two pickles of their own.
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("119547037146038801333356");
    private const long LegacyProtocolVersion = 1001;

    private readonly FileStream _stream;
    private readonly IStorageSource _storages;
    private readonly bool _bigEndian;
    private readonly Dictionary<string, TorchTensorRef> _tensors;
    private readonly Dictionary<string, int> _storageUsers;
    private readonly Dictionary<string, TorchStorageRef> _declaredStorages;
    private readonly object _gate = new();
    private (string Key, Tensor Storage)? _lastStorage;

    private TorchCheckpointFile(string path, FileStream stream, IStorageSource storages, bool bigEndian,
        Dictionary<string, TorchTensorRef> tensors, Dictionary<string, TorchStorageRef> declaredStorages,
        long? globalStep,
        IReadOnlyList<string> topLevelKeys)
    {
        _declaredStorages = declaredStorages;
        Path = path;
        _stream = stream;
        _storages = storages;
        _bigEndian = bigEndian;
        _tensors = tensors;
        GlobalStep = globalStep;
        TopLevelKeys = topLevelKeys;
        _storageUsers = tensors.Values.GroupBy(t => t.Storage.RootKey).ToDictionary(g => g.Key, g => g.Count());
    }

    public string Path { get; }

    public IReadOnlyCollection<string> Keys => _tensors.Keys;

    /// <summary>The checkpoint's <c>global_step</c> (training step) when it has one; SD 2.x 768-v checkpoints are
    /// told apart from 512-base ones partly by it.</summary>
    public long? GlobalStep { get; }

    /// <summary>String keys of the top-level dict (e.g. <c>state_dict</c>, <c>global_step</c>, <c>epoch</c>).</summary>
    public IReadOnlyList<string> TopLevelKeys { get; }

    /// <summary>Opens a torch checkpoint (zip or legacy layout). Throws <see cref="UnsafeCheckpointException"/> when
    /// its pickle references anything beyond tensors, plain containers and the allow-listed inert classes,
    /// <see cref="CheckpointFormatException"/> when it is malformed.</summary>
    public static TorchCheckpointFile Open(string path) => Open(path, selectTensors: null);

    /// <summary>
    /// Opens a torch file whose tensors are not a state dict (a textual-inversion embedding keeps its vectors in
    /// <c>string_to_param</c>): <paramref name="selectTensors"/> picks them, by name, from the unpickled root object
    /// and throws <see cref="CheckpointFormatException"/> when the object is not what it reads.
    /// </summary>
    internal static TorchCheckpointFile Open(
        string path, Func<object?, IReadOnlyDictionary<string, TorchTensorRef>>? selectTensors)
    {
        // Read-only, and others may read, rename or delete the file meanwhile (Windows: a re-download replacing it).
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            return IsZip(path, stream) ? OpenZip(path, stream, selectTensors) : OpenLegacy(path, stream, selectTensors);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    private static bool IsZip(string path, FileStream stream)
    {
        Span<byte> head = stackalloc byte[4];
        int read = stream.ReadAtLeast(head, 4, throwOnEndOfStream: false);
        stream.Position = 0;
        if (read == 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) return true;
        if (read >= 1 && head[0] == 0x80) return false; // a pickle's PROTO opcode: the legacy layout
        throw new CheckpointFormatException(
            $"'{path}' is not a PyTorch checkpoint (it starts with neither a zip header nor a pickle).");
    }

    private static TorchCheckpointFile OpenZip(string path, FileStream stream,
        Func<object?, IReadOnlyDictionary<string, TorchTensorRef>>? selectTensors)
    {
        ZipArchive zip;
        try
        {
            zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointFormatException(
                $"'{path}' is not a readable zip archive (truncated or damaged?): {e.Message}", e);
        }
        try
        {
            ZipArchiveEntry pickleEntry;
            try
            {
                // The top folder is named after the file torch.save wrote (often "archive"); find it by data.pkl.
                pickleEntry = zip.Entries
                    .Where(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)
                        && e.FullName.Count(c => c == '/') == 1)
                    .SingleOrDefault()
                        ?? throw new CheckpointFormatException(
                            $"'{path}' is a zip archive but has no <top>/data.pkl: not a torch checkpoint.");
            }
            catch (InvalidOperationException)
            {
                throw new CheckpointFormatException($"'{path}' has more than one top-level data.pkl.");
            }
            var prefix = pickleEntry.FullName[..^"data.pkl".Length];
            var bigEndian = ReadByteOrder(path, zip, prefix);

            if (pickleEntry.Length > MaxPickleBytes)
                throw new CheckpointFormatException(
                    $"'{path}': data.pkl declares {pickleEntry.Length} bytes, over the {MaxPickleBytes} limit.");
            var pickle = ReadEntry(path, pickleEntry, pickleEntry.Length);

            var storages = new Dictionary<string, TorchStorageRef>(StringComparer.Ordinal);
            var root = RestrictedUnpickler.Load(pickle, pid => LoadStorage(path, pid, storages, legacy: false));
            var source = new ZipStorages(path, zip, prefix);
            return FromRoot(path, stream, root, source, storages, bigEndian, selectTensors);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The legacy layout (torch/serialization.py <c>_legacy_save</c>): five pickles back to back (the magic number; the
    /// protocol version 1001; <c>sys_info</c> with <c>little_endian</c>; the object, whose persistent ids are
    /// <c>('storage', type, key, location, numel, view)</c>; the sorted list of storage keys), then for each key in
    /// that order an 8-byte element count and the storage's raw bytes.
    /// </summary>
    private static TorchCheckpointFile OpenLegacy(string path, FileStream stream,
        Func<object?, IReadOnlyDictionary<string, TorchTensorRef>>? selectTensors)
    {
        var storages = new Dictionary<string, TorchStorageRef>(StringComparer.Ordinal);
        var (values, dataStart) = ReadLegacyPickles(
            path, stream, pid => LoadStorage(path, pid, storages, legacy: true));
        if (values[0] is not BigInteger magic || magic != LegacyMagic)
            throw new CheckpointFormatException(
                $"'{path}' starts with a pickle but not torch.save's legacy magic number.");
        if (values[1] is not long protocol || protocol != LegacyProtocolVersion)
            throw new CheckpointFormatException(
                $"'{path}': legacy torch format version {values[1]} is not {LegacyProtocolVersion}.");
        bool bigEndian = values[2] is PickleDict sysInfo
            && sysInfo.TryGet("little_endian", out var little) && little is false;
        if (values[4] is not PickleList keyList || keyList.Any(k => k is not string))
            throw new CheckpointFormatException($"'{path}': the legacy storage key list is not a list of names.");

        var table = new Dictionary<string, (long Offset, long Bytes)>(StringComparer.Ordinal);
        long offset = dataStart;
        var countBytes = new byte[8];
        foreach (string key in keyList.Cast<string>())
        {
            if (RandomAccess.Read(stream.SafeFileHandle, countBytes, offset) != 8)
                throw new CheckpointFormatException(
                    $"'{path}': the file ends before storage '{key}' (truncated file?).");
            long count = bigEndian
                ? BinaryPrimitives.ReadInt64BigEndian(countBytes) : BinaryPrimitives.ReadInt64LittleEndian(countBytes);
            if (!storages.TryGetValue(key, out var storage))
                throw new CheckpointFormatException($"'{path}': storage '{key}' is listed but no tensor names it.");
            if (count != storage.ElementCount)
                throw new CheckpointFormatException(
                    $"'{path}': storage '{key}' holds {count} elements " +
                    $"but the pickle declares {storage.ElementCount}.");
            long bytes = CheckedBytes(path, key, count, ElementSize(storage.DType));
            if (!table.TryAdd(key, (offset + 8, bytes)))
                throw new CheckpointFormatException($"'{path}': storage '{key}' is listed twice.");
            offset = checked(offset + 8 + bytes);
        }
        if (offset > stream.Length)
            throw new CheckpointFormatException(
                $"'{path}': its storages need {offset} bytes but the file has {stream.Length} (truncated file?).");
        return FromRoot(path, stream, values[3], new LegacyStorages(stream, table), storages, bigEndian, selectTensors);
    }

    /// <summary>The five leading pickles of the legacy layout and the offset where the storages start. Reads the file's
    /// start, doubling it while a pickle runs past what was read.</summary>
    private static (object?[] Values, long DataStart) ReadLegacyPickles(
        string path, FileStream stream, Func<PickleTuple, object?> persistentLoad)
    {
        long length = stream.Length;
        long window = Math.Min(length, 1 << 20);
        while (true)
        {
            var head = new byte[window];
            stream.Position = 0;
            stream.ReadExactly(head);
            bool complete = window == length;
            try
            {
                var values = new object?[5];
                int position = 0;
                for (int i = 0; i < values.Length; i++)
                    values[i] = RestrictedUnpickler.Load(head, position, complete,
                        i == 3 ? persistentLoad : _ =>
                            throw new CheckpointFormatException(
                                $"'{path}': a persistent id outside the object's pickle."),
                        out position);
                return (values, position);
            }
            catch (PickleNeedsMoreDataException)
            {
                if (window >= Math.Min(length, MaxPickleBytes))
                    throw new CheckpointFormatException(
                        $"'{path}': the legacy pickles run past {window} bytes (truncated or not a checkpoint?).");
                window = Math.Min(Math.Min(length, MaxPickleBytes), window * 2);
            }
            catch (CheckpointFormatException e) when (e is not UnsafeCheckpointException && !e.Message.Contains(path))
            {
                throw new CheckpointFormatException($"'{path}': {e.Message}", e);
            }
        }
    }

    /// <summary>The tensors of the unpickled <paramref name="root"/>, each checked against its
    /// storage's bytes.</summary>
    private static TorchCheckpointFile FromRoot(string path, FileStream stream, object? root, IStorageSource source,
        Dictionary<string, TorchStorageRef> storages, bool bigEndian,
        Func<object?, IReadOnlyDictionary<string, TorchTensorRef>>? selectTensors = null)
    {
        if (selectTensors is not null)
        {
            var selected = new Dictionary<string, TorchTensorRef>(selectTensors(root), StringComparer.Ordinal);
            foreach (var (name, tensor) in selected) Validate(path, source, storages, name, tensor);
            var keys = root is PickleDict dict
                ? dict.Items.Select(kv => kv.Key).OfType<string>().ToList() : new List<string>();
            return new TorchCheckpointFile(path, stream, source, bigEndian, selected, storages, null, keys);
        }
        if (root is not PickleDict top)
            throw new CheckpointFormatException(
                $"'{path}': the checkpoint holds {root?.GetType().Name ?? "None"}, not a dict of tensors.");
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
            BigInteger =>
                throw new CheckpointFormatException($"'{path}': global_step {step} does not fit a 64-bit integer."),
            _ => null,
        } : null;

        foreach (var (name, tensor) in tensors) Validate(path, source, storages, name, tensor);
        return new TorchCheckpointFile(path, stream, source, bigEndian, tensors, storages, globalStep, topLevelKeys);
    }

    private static bool ReadByteOrder(string path, ZipArchive zip, string prefix)
    {
        var entry = zip.GetEntry(prefix + "byteorder");
        if (entry is null) return false; // written since torch 2.1; older files are little-endian
        if (entry.Length > 16)
            throw new CheckpointFormatException($"'{path}': byteorder entry is {entry.Length} bytes.");
        var text = Encoding.ASCII.GetString(ReadEntry(path, entry, entry.Length)).Trim();
        return text switch
        {
            "little" => false,
            "big" => true,
            _ => throw new CheckpointFormatException($"'{path}': unknown byteorder '{text}'."),
        };
    }

    private static object LoadStorage(
        string path, PickleTuple pid, Dictionary<string, TorchStorageRef> storages, bool legacy)
    {
        // Legacy files name each nn.Module class they pickled as ('module', class, source file, source); the class was
        // allow-checked when the pickle named it, and stays a name.
        if (legacy && pid.Count == 4 && pid[0] is "module" && pid[1] is PickleGlobal moduleClass) return moduleClass;
        // zip: ('storage', <storage type>, key, location, numel); legacy: the same plus a view (key,
        // offset, numel) or None
        if (pid.Count != (legacy ? 6 : 5) || pid[0] is not "storage")
            throw new CheckpointFormatException(
                $"'{path}': persistent id is not ('storage', type, key, location, numel{(legacy ? ", view" : "")}).");
        if (pid[1] is not PickleGlobal type || !RestrictedUnpickler.TryGetStorageType(type, out var dtype))
            throw new UnsafeCheckpointException(
                $"'{path}': persistent id names '{pid[1]}', which is not a storage type.",
                refusedGlobal: pid[1]?.ToString());
        var key = PlainKey(path, pid[2]);
        if (pid[4] is not long numel || numel < 0)
            throw new CheckpointFormatException($"'{path}': storage '{key}' declares {pid[4]} elements.");
        var storage = Remember(path, storages, new TorchStorageRef(key, dtype, pid[3] as string ?? "cpu", numel));
        if (!legacy || pid[5] is null) return storage;

        if (pid[5] is not PickleTuple { Count: 3 } view
            || view[1] is not long viewOffset || view[2] is not long viewCount
            || viewOffset < 0 || viewCount < 0 || viewOffset > numel - viewCount)
            throw new CheckpointFormatException(
                $"'{path}': storage '{key}' has a view that is not (key, offset, numel) inside it.");
        return Remember(path, storages, new TorchStorageRef(PlainKey(path, view[0]), dtype, storage.Location, viewCount)
        {
            RootKey = key,
            RootOffset = viewOffset,
        });
    }

    private static string PlainKey(string path, object? key) =>
        key is string name && name.Length > 0 && !name.Contains('/') && !name.Contains('\\') && !name.Contains("..")
            ? name
            : throw new CheckpointFormatException($"'{path}': storage key '{key}' is not a plain name.");

    private static TorchStorageRef Remember(
        string path, Dictionary<string, TorchStorageRef> storages, TorchStorageRef storage)
    {
        if (storages.TryGetValue(storage.Key, out var seen))
        {
            if (seen != storage)
                throw new CheckpointFormatException(
                    $"'{path}': storage '{storage.Key}' is declared twice with different types, sizes or roots.");
            return seen;
        }
        storages[storage.Key] = storage;
        return storage;
    }

    private static void Validate(
        string path, IStorageSource source, Dictionary<string, TorchStorageRef> storages, string name,
        TorchTensorRef tensor)
    {
        var storage = tensor.Storage;
        var elementSize = ElementSize(storage.DType);
        var root = storages[storage.RootKey];
        long rootBytes = CheckedBytes(path, name, root.ElementCount, elementSize);
        source.CheckAvailable(storage.RootKey, rootBytes, name);
        if (rootBytes > Array.MaxLength)
            throw new CheckpointFormatException(
                $"'{path}': storage '{storage.RootKey}' of {rootBytes} bytes is larger than one read can hold.");

        if (tensor.StorageOffset < 0)
            throw new CheckpointFormatException($"'{path}': tensor '{name}' has a negative storage offset.");
        long lastElement = tensor.StorageOffset; // index of the furthest element the view touches
        long elements = 1;
        for (int i = 0; i < tensor.Sizes.Length; i++)
        {
            long size = tensor.Sizes[i], stride = tensor.Strides[i];
            if (size < 0 || stride < 0)
                throw new CheckpointFormatException(
                    $"'{path}': tensor '{name}' has size {size} / stride {stride} in dim {i}.");
            try
            {
                elements = checked(elements * size);
                if (size > 0) lastElement = checked(lastElement + (size - 1) * stride);
            }
            catch (OverflowException)
            {
                throw new CheckpointFormatException(
                    $"'{path}': tensor '{name}' declares a shape too large " +
                    $"to address: [{string.Join(", ", tensor.Sizes)}].");
            }
        }
        if (elements > 0 && lastElement >= storage.ElementCount)
            throw new CheckpointFormatException(
                $"'{path}': tensor '{name}' of shape [{string.Join(", ", tensor.Sizes)}] " +
                $"reaches element {lastElement} " +
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
            throw new CheckpointFormatException(
                $"'{path}': storage of tensor '{name}' declares {elements} elements, too many to address.");
        }
    }

    public long[] ShapeOf(string key) => (long[])Get(key).Sizes.Clone();

    public ScalarType DTypeOf(string key) => Get(key).Storage.DType;

    /// <inheritdoc/>
    /// <remarks>One tensor after the other through <see cref="Read"/>: the zip entries are inflated,
    /// never mapped.</remarks>
    public Tensor[] ReadMany(IReadOnlyList<string> keys, ScalarType dtype, bool shareFileMemory = false)
    {
        var results = new Tensor[keys.Count];
        try
        {
            for (int i = 0; i < keys.Count; i++) results[i] = Read(keys[i], dtype);
            return results;
        }
        catch
        {
            foreach (var tensor in results) tensor?.Dispose();
            throw;
        }
    }

    public Tensor Read(string key, ScalarType? dtype = null, Device? device = null)
    {
        var tensor = Get(key);
        lock (_gate)
        {
            var storage = tensor.Storage;
            bool shared = _storageUsers[storage.RootKey] > 1;
            bool wholeStorage = tensor.StorageOffset == 0 && storage.RootOffset == 0 &&
                storage.RootKey == storage.Key &&
                IsContiguous(tensor) && tensor.Sizes.Aggregate(1L, (a, b) => a * b) == storage.ElementCount;

            using var scope = torch.NewDisposeScope();
            Tensor flat;
            if (_lastStorage is { } last && last.Key == storage.RootKey) flat = last.Storage;
            else
            {
                flat = LoadStorageTensor(storage, key);
                if (shared)
                {
                    // Views into one storage usually come in a row (e.g. slices of a fused weight): keep it.
                    _lastStorage?.Storage.Dispose();
                    flat.DetachFromDisposeScope();
                    _lastStorage = (storage.RootKey, flat);
                }
            }

            Tensor result;
            if (wholeStorage && !shared) result = flat.reshape(tensor.Sizes);
            else
            {
                // An independent, contiguous copy: contiguous() copies a strided view, clone() a contiguous one.
                var view = flat.as_strided(tensor.Sizes, tensor.Strides, storage.RootOffset + tensor.StorageOffset);
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
        long rootElements = _declaredStorages[storage.RootKey].ElementCount;
        var bytes = _storages.Read(storage.RootKey, rootElements * elementSize);
        if (_bigEndian && elementSize > 1)
            for (int i = 0; i < bytes.Length; i += elementSize) Array.Reverse(bytes, i, elementSize);
        var flat = torch.empty(new[] { rootElements }, storage.DType);
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
                    $"'{path}': entry '{entry.FullName}' ends after {read} of {buffer.Length} bytes " +
                    "(truncated file?).");
        }
        catch (InvalidDataException e)
        {
            throw new CheckpointFormatException(
                $"'{path}': entry '{entry.FullName}' cannot be read (damaged?): {e.Message}", e);
        }
        catch (IOException e) when (e is not CheckpointFormatException)
        {
            throw new CheckpointFormatException($"'{path}': entry '{entry.FullName}' cannot be read: {e.Message}", e);
        }
        return buffer;
    }

    private TorchTensorRef Get(string key) =>
        _tensors.TryGetValue(key, out var tensor)
            ? tensor : throw new KeyNotFoundException($"'{Path}' has no tensor '{key}'.");

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
        _storages.Dispose();
        _stream.Dispose();
    }

    /// <summary>Where a checkpoint's storages are: zip entries, or byte ranges of a legacy file.</summary>
    private interface IStorageSource : IDisposable
    {
        /// <summary>Throws unless the storage <paramref name="key"/> has at least <paramref
        /// name="bytes"/> bytes.</summary>
        void CheckAvailable(string key, long bytes, string tensorName);

        byte[] Read(string key, long bytes);
    }

    private sealed class ZipStorages(string path, ZipArchive zip, string prefix) : IStorageSource
    {
        public void CheckAvailable(string key, long bytes, string tensorName)
        {
            var entry = zip.GetEntry(prefix + "data/" + key)
                ?? throw new CheckpointFormatException(
                    $"'{path}': tensor '{tensorName}' needs storage '{key}', which is missing from the archive.");
            if (bytes > entry.Length)
                throw new CheckpointFormatException(
                    $"'{path}': storage '{key}' of tensor '{tensorName}' " +
                    $"declares {bytes} bytes but its entry holds {entry.Length}.");
            if (entry.CompressedLength * MaxDeflateRatio < entry.Length && entry.Length > 1 << 20)
                throw new CheckpointFormatException($"'{path}': storage entry '{key}' declares an impossible size.");
        }

        public byte[] Read(string key, long bytes) => ReadEntry(path, zip.GetEntry(prefix + "data/" + key)!, bytes);

        public void Dispose() => zip.Dispose();
    }

    private sealed class LegacyStorages(
        FileStream stream, Dictionary<string, (long Offset, long Bytes)> table) : IStorageSource
    {
        public void CheckAvailable(string key, long bytes, string tensorName)
        {
            if (!table.TryGetValue(key, out var range))
                throw new CheckpointFormatException(
                    $"'{stream.Name}': tensor '{tensorName}' needs storage '{key}', which the file does not list.");
            if (bytes > range.Bytes)
                throw new CheckpointFormatException(
                    $"'{stream.Name}': storage '{key}' of tensor '{tensorName}' " +
                    $"declares {bytes} bytes but the file holds {range.Bytes}.");
        }

        public byte[] Read(string key, long bytes)
        {
            var buffer = new byte[bytes];
            // Positional reads: no shared file position, so concurrent readers cannot interleave.
            int read = RandomAccess.Read(stream.SafeFileHandle, buffer, table[key].Offset);
            while (read < buffer.Length)
            {
                int more = RandomAccess.Read(stream.SafeFileHandle, buffer.AsSpan(read), table[key].Offset + read);
                if (more == 0)
                    throw new CheckpointFormatException(
                        $"'{stream.Name}': storage '{key}' ends early (truncated file?).");
                read += more;
            }
            return buffer;
        }

        public void Dispose() { }
    }
}
