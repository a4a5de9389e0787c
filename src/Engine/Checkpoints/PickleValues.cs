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
internal sealed record TorchStorageRef(string Key, ScalarType DType, string Location, long ElementCount);

/// <summary>A tensor rebuilt by <c>torch._utils._rebuild_tensor_v2</c>: a strided view into a storage.</summary>
internal sealed record TorchTensorRef(TorchStorageRef Storage, long StorageOffset, long[] Sizes, long[] Strides);
