using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Checkpoints;

// The values our restricted unpickler produces. Python objects other than these cannot be represented, which is the
// point: a pickle can only describe containers, scalars and references to tensor storages.

/// <summary>An allow-listed global (<c>module.name</c>); it is data here, never something we look up and call.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;

    public override string ToString() => FullName;
}

/// <summary>A Python tuple.</summary>
internal sealed record PickleTuple(object?[] Items)
{
    public int Count => Items.Length;

    public object? this[int index] => Items[index];
}

/// <summary>A Python list (also used for sets, which only appear as data).</summary>
internal sealed class PickleList : List<object?>
{
}

/// <summary>A Python dict or OrderedDict, keeping insertion order like both do.</summary>
internal sealed class PickleDict
{
    private readonly List<KeyValuePair<object, object?>> _items = new();
    private readonly Dictionary<object, int> _index = new();

    public IReadOnlyList<KeyValuePair<object, object?>> Items => _items;

    public int Count => _items.Count;

    public void Set(object? key, object? value)
    {
        // Hashable keys only: strings, integers, floats, booleans, tuples of those (records compare by reference
        // for tuples, which is fine: we only look keys up by string).
        if (key is null) key = PickleNone.Instance;
        if (_index.TryGetValue(key, out var at)) _items[at] = new(key, value);
        else
        {
            _index[key] = _items.Count;
            _items.Add(new(key, value));
        }
    }

    public bool TryGet(string key, out object? value)
    {
        if (_index.TryGetValue(key, out var at))
        {
            value = _items[at].Value;
            return true;
        }
        value = null;
        return false;
    }
}

/// <summary>Stands in for Python's None used as a dictionary key.</summary>
internal sealed class PickleNone
{
    public static readonly PickleNone Instance = new();

    public override string ToString() => "None";
}

/// <summary>A storage named by a persistent id: <c>('storage', torch.FloatStorage, key, location, numel)</c>.</summary>
/// <remarks>A storage view of the legacy format is the element range [<see cref="RootOffset"/>,
/// RootOffset + ElementCount) of the storage <see cref="RootKey"/>; otherwise RootKey is Key and RootOffset 0.</remarks>
internal sealed record TorchStorageRef(string Key, ScalarType DType, string Location, long ElementCount)
{
    public string RootKey { get; init; } = Key;

    public long RootOffset { get; init; }
}

/// <summary>A tensor rebuilt by <c>torch._utils._rebuild_tensor_v2</c>: a strided view into a storage.</summary>
internal sealed record TorchTensorRef(TorchStorageRef Storage, long StorageOffset, long[] Sizes, long[] Strides);

/// <summary>
/// An instance of an allow-listed class (e.g. Lightning's <c>ModelCheckpoint</c>, <c>ParameterDict</c>): inert, with
/// only its class name. It compares by identity, as a Python object without <c>__eq__</c> does, so it can be a dict key.
/// </summary>
internal sealed class PickleObject(PickleGlobal cls)
{
    public PickleGlobal Class { get; } = cls;

    /// <summary>The state BUILD gave it (already unpickled data: containers, scalars, tensor references), or null.
    /// Kept as data and never applied: a torch 1.11-era ParameterDict holds its tensors in <c>_parameters</c> here.</summary>
    public object? State { get; set; }

    public override string ToString() => Class.FullName + " object";
}

/// <summary><c>numpy.dtype(code)</c>: enough to read a numpy scalar of a plain numeric type.</summary>
internal sealed class NumpyDType(string code)
{
    public string Code { get; } = code;

    /// <summary>From the dtype's pickled state: '&lt;' little, '&gt;' big, '|' not applicable, '=' native.</summary>
    public string ByteOrder { get; set; } = "<";

    /// <summary>The scalar as a .NET number (double, long or bool) for the common numeric types; otherwise null, and the
    /// caller keeps a placeholder.</summary>
    public object? ToScalar(byte[] raw)
    {
        if (ByteOrder == ">" && raw.Length > 1) return null; // big-endian scalars stay placeholders
        return (Code, raw.Length) switch
        {
            ("f8", 8) => BitConverter.ToDouble(raw),
            ("f4", 4) => (double)BitConverter.ToSingle(raw),
            ("f2", 2) => (double)BitConverter.ToHalf(raw),
            ("i8", 8) => BitConverter.ToInt64(raw),
            ("i4", 4) => (long)BitConverter.ToInt32(raw),
            ("i2", 2) => (long)BitConverter.ToInt16(raw),
            ("i1", 1) => (long)(sbyte)raw[0],
            ("u1", 1) => (long)raw[0],
            ("u2", 2) => (long)BitConverter.ToUInt16(raw),
            ("u4", 4) => (long)BitConverter.ToUInt32(raw),
            ("b1", 1) => raw[0] != 0,
            _ => null,
        };
    }
}

/// <summary>The unpickler ran off the end of a file's first bytes; <see cref="Needed"/> is how far it wanted to read.</summary>
internal sealed class PickleNeedsMoreDataException(long needed)
    : CheckpointFormatException($"The pickle continues past byte {needed}.")
{
    public long Needed { get; } = needed;
}
