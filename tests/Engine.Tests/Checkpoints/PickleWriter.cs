using System.Text;
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
