using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Checkpoints;

/// <summary>
/// Test-side writer of pickle opcodes, memoising the way CPython's pickler does for protocol 2 (every string, tuple,
/// global and reduced object gets a BINPUT; a repeated string or global is a BINGET).
/// </summary>
internal sealed class PickleWriter
{
    private readonly MemoryStream _out = new();
    private readonly Dictionary<string, int> _memoByKey = new(StringComparer.Ordinal);
    private int _nextMemo;

    public byte[] ToArray() => _out.ToArray();

    public PickleWriter Raw(params byte[] bytes)
    {
        _out.Write(bytes);
        return this;
    }

    public PickleWriter Op(char op) => Raw((byte)op);

    public PickleWriter Proto(int protocol) => Raw(0x80, (byte)protocol);

    public PickleWriter Stop() => Op('.');

    public PickleWriter Mark() => Op('(');

    public PickleWriter Put()
    {
        int index = _nextMemo++;
        if (index < 256) return Raw((byte)'q', (byte)index);
        Op('r');
        _out.Write(BitConverter.GetBytes(index));
        return this;
    }

    public PickleWriter Get(int index)
    {
        if (index < 256) return Raw((byte)'h', (byte)index);
        Op('j');
        _out.Write(BitConverter.GetBytes(index));
        return this;
    }

    private bool TryRecall(string key)
    {
        if (!_memoByKey.TryGetValue(key, out var index)) return false;
        Get(index);
        return true;
    }

    private void Remember(string key)
    {
        _memoByKey[key] = _nextMemo;
        Put();
    }

    public PickleWriter Str(string value)
    {
        if (TryRecall("s:" + value)) return this;
        var bytes = Encoding.UTF8.GetBytes(value);
        Op('X');
        _out.Write(BitConverter.GetBytes(bytes.Length));
        _out.Write(bytes);
        Remember("s:" + value);
        return this;
    }

    public PickleWriter Int(long value)
    {
        if (value >= 0 && value < 256) return Raw((byte)'K', (byte)value);
        if (value >= 0 && value < 65536) { Op('M'); _out.Write(BitConverter.GetBytes((ushort)value)); return this; }
        if (value >= int.MinValue && value <= int.MaxValue) { Op('J'); _out.Write(BitConverter.GetBytes((int)value)); return this; }
        var bytes = new System.Numerics.BigInteger(value).ToByteArray();
        Raw(0x8a, (byte)bytes.Length);
        _out.Write(bytes);
        return this;
    }

    public PickleWriter Bool(bool value) => Raw(value ? (byte)0x88 : (byte)0x89);

    /// <summary>GLOBAL "module\nname\n", memoised.</summary>
    public PickleWriter Global(string module, string name)
    {
        if (TryRecall("g:" + module + "." + name)) return this;
        Op('c');
        _out.Write(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
        Remember("g:" + module + "." + name);
        return this;
    }

    /// <summary>Writes the items pushed by <paramref name="items"/> as a tuple the way pickle does by size.</summary>
    public PickleWriter Tuple(int count, Action items)
    {
        if (count == 0) return Op(')');
        if (count > 3) Mark();
        items();
        Raw(count switch { 1 => 0x85, 2 => 0x86, 3 => 0x87, _ => (byte)'t' });
        return Put();
    }

    public PickleWriter IntTuple(long[] values) => Tuple(values.Length, () => { foreach (var v in values) Int(v); });

    /// <summary><c>collections.OrderedDict()</c> via REDUCE, memoised.</summary>
    public PickleWriter EmptyOrderedDict()
    {
        Global("collections", "OrderedDict");
        Op(')');
        Op('R');
        return Put();
    }

    /// <summary>SETITEMS in batches of 1000, like pickle's batching.</summary>
    public PickleWriter SetItems<T>(IReadOnlyList<T> items, Action<T> writePair)
    {
        for (int start = 0; start < items.Count; start += 1000)
        {
            int end = Math.Min(items.Count, start + 1000);
            if (end - start == 1) { writePair(items[start]); Op('s'); continue; }
            Mark();
            for (int i = start; i < end; i++) writePair(items[i]);
            Op('u');
        }
        return this;
    }
}

/// <summary>
/// Writes a checkpoint laid out the way <c>torch.save</c> (zip serialization, pickle protocol 2) lays it out:
/// <c>{archive}/data.pkl</c>, <c>{archive}/byteorder</c>, <c>{archive}/data/{key}</c>, <c>{archive}/version</c>.
/// The object is <c>{'state_dict': OrderedDict(name → tensor), 'global_step': n}</c>, each tensor pickled as
/// <c>torch._utils._rebuild_tensor_v2(persistent_id, offset, size, stride, False, OrderedDict())</c>.
/// </summary>
internal sealed class TorchSaveWriter
{
    private sealed record Storage(string Key, ScalarType DType, byte[] Bytes);
    private sealed record View(string Name, Storage Storage, long Offset, long[] Sizes, long[] Strides);

    private readonly List<Storage> _storages = new();
    private readonly List<View> _views = new();

    public long? GlobalStep { get; set; }
    public bool WrapInStateDict { get; set; } = true;
    public string ArchiveName { get; set; } = "archive";

    /// <summary>Overrides the element count declared in a storage's persistent id (to fake a huge storage).</summary>
    public Dictionary<string, long> DeclaredElementCounts { get; } = new();

    /// <summary>Lets a test damage the pickle or a storage before the zip is written.</summary>
    public Func<byte[], byte[]>? MutatePickle { get; set; }
    public Func<string, byte[], byte[]>? MutateStorage { get; set; }

    public static string StorageTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "FloatStorage",
        ScalarType.Float16 => "HalfStorage",
        ScalarType.BFloat16 => "BFloat16Storage",
        ScalarType.Float64 => "DoubleStorage",
        ScalarType.Int64 => "LongStorage",
        ScalarType.Int32 => "IntStorage",
        ScalarType.Int16 => "ShortStorage",
        ScalarType.Int8 => "CharStorage",
        ScalarType.Byte => "ByteStorage",
        ScalarType.Bool => "BoolStorage",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>Adds a storage holding <paramref name="bytes"/>; returns its key.</summary>
    public string AddStorage(ScalarType dtype, byte[] bytes)
    {
        var key = _storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _storages.Add(new Storage(key, dtype, bytes));
        return key;
    }

    /// <summary>Adds a tensor view into an existing storage.</summary>
    public void AddView(string name, string storageKey, long offset, long[] sizes, long[] strides) =>
        _views.Add(new View(name, _storages.Single(s => s.Key == storageKey), offset, sizes, strides));

    /// <summary>Adds <paramref name="tensor"/> with its own contiguous storage.</summary>
    public void AddTensor(string name, Tensor tensor)
    {
        using var contiguous = tensor.contiguous();
        var key = AddStorage(tensor.dtype, contiguous.bytes.ToArray());
        AddView(name, key, 0, tensor.shape, ContiguousStrides(tensor.shape));
    }

    public static long[] ContiguousStrides(long[] sizes)
    {
        var strides = new long[sizes.Length];
        long stride = 1;
        for (int i = sizes.Length - 1; i >= 0; i--) { strides[i] = stride; stride *= sizes[i]; }
        return strides;
    }

    public byte[] BuildPickle()
    {
        var p = new PickleWriter();
        p.Proto(2);
        if (WrapInStateDict)
        {
            p.Op('}').Put();
            p.Mark();
            p.Str("state_dict");
            WriteStateDict(p);
            if (GlobalStep is { } step) { p.Str("global_step"); p.Int(step); }
            p.Op('u');
        }
        else WriteStateDict(p);
        p.Stop();
        var bytes = p.ToArray();
        return MutatePickle is null ? bytes : MutatePickle(bytes);
    }

    private void WriteStateDict(PickleWriter p)
    {
        p.EmptyOrderedDict();
        p.SetItems(_views, view =>
        {
            p.Str(view.Name);
            p.Global("torch._utils", "_rebuild_tensor_v2");
            p.Tuple(6, () =>
            {
                p.Tuple(5, () =>
                {
                    p.Str("storage");
                    p.Global("torch", StorageTypeName(view.Storage.DType));
                    p.Str(view.Storage.Key);
                    p.Str("cpu");
                    p.Int(DeclaredElementCounts.TryGetValue(view.Storage.Key, out var n)
                        ? n : view.Storage.Bytes.Length / ElementSize(view.Storage.DType));
                });
                p.Op('Q'); // BINPERSID
                p.Int(view.Offset);
                p.IntTuple(view.Sizes);
                p.IntTuple(view.Strides);
                p.Bool(false);
                p.EmptyOrderedDict();
            });
            p.Op('R').Put();
        });
        // state_dict()._metadata, set as an instance attribute: pickled as BUILD with a dict state.
        p.Op('}').Put();
        p.Str("_metadata");
        p.EmptyOrderedDict();
        p.Str("");
        p.Op('}').Put();
        p.Str("version");
        p.Int(1);
        p.Op('s');
        p.Op('s');
        p.Op('s');
        p.Op('b');
    }

    public void Save(string path)
    {
        var pickle = BuildPickle();
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        // torch.save stores entries uncompressed.
        void Add(string name, byte[] bytes)
        {
            var entry = zip.CreateEntry(ArchiveName + "/" + name, CompressionLevel.NoCompression);
            using var s = entry.Open();
            s.Write(bytes);
        }
        Add("data.pkl", pickle);
        Add(".format_version", "1"u8.ToArray());
        Add(".storage_alignment", "64"u8.ToArray());
        Add("byteorder", "little"u8.ToArray());
        foreach (var storage in _storages)
            Add("data/" + storage.Key, MutateStorage is null ? storage.Bytes : MutateStorage(storage.Key, storage.Bytes));
        Add("version", "3\n"u8.ToArray());
        Add(".data/serialization_id", "1234567890"u8.ToArray());
    }

    /// <summary>Writes a zip checkpoint whose data.pkl is exactly <paramref name="pickle"/> (no storages).</summary>
    public static void SaveRawPickle(string path, byte[] pickle, string archiveName = "archive")
    {
        using var file = File.Create(path);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        var entry = zip.CreateEntry(archiveName + "/data.pkl", CompressionLevel.NoCompression);
        using (var s = entry.Open()) s.Write(pickle);
        var version = zip.CreateEntry(archiveName + "/version", CompressionLevel.NoCompression);
        using (var s = version.Open()) s.Write("3\n"u8);
    }

    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}
