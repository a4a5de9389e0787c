using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Checkpoints;

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
