namespace PSStableDiffusion.Engine.Checkpoints;

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
