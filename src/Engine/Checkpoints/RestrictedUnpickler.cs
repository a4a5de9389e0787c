using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Checkpoints;

// The values this unpickler produces are PickleGlobal, PickleTuple, PickleList, PickleDict, PickleNone, PickleObject,
// NumpyDType, TorchStorageRef and TorchTensorRef. Python objects other than these cannot be represented, which is the
// point: a pickle can only describe containers, scalars and references to tensor storages.

/// <summary>
/// Interprets the pickle that <c>torch.save</c> writes (protocols 2 to 5) without running any code. Globals are
/// checked against an allow list the moment GLOBAL / STACK_GLOBAL names them, so a refused one is never resolved,
/// let alone called; the allowed ones are implemented here (tensor rebuilds become <see cref="TorchTensorRef"/>,
/// OrderedDict becomes <see cref="PickleDict"/>). Opcodes that could build arbitrary objects (INST, OBJ, EXT*) or that
/// torch.save never emits are refused by name. Every length is checked against the bytes that remain.
/// </summary>
internal sealed class RestrictedUnpickler
{
    private const int MaxStackDepth = 1 << 20;
    private const int MaxMemoEntries = 1 << 22;
    private const int MaxMarkDepth = 1 << 16;
    private const int MaxLongBytes = 1024;

    private static readonly Dictionary<string, ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = ScalarType.Float32,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["DoubleStorage"] = ScalarType.Float64,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    // The only callables a pickle may name. Each is interpreted below; none maps to real code.
    private static readonly HashSet<string> AllowedCallables = new(StringComparer.Ordinal)
    {
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_parameter",          // nn.Parameter in embedding / LoRA .pt files
        "torch._utils._rebuild_parameter_with_state",
        "collections.OrderedDict",
        "_codecs.encode",       // protocol 2 writes bytes objects as _codecs.encode(str, 'latin1')
        "builtins.set",
        "__builtin__.set",      // protocol 2 names Python 3's set by its Python 2 name
        "numpy.core.multiarray.scalar",  // numpy scalars (Lightning callback scores): scalar(dtype, bytes)
        "numpy._core.multiarray.scalar", // the same under numpy 2
    };

    // Names that may appear as data, never as code: instantiating one gives an inert placeholder
    // (PickleObject) whose BUILD state is kept as data, never applied. These are what Lightning-era checkpoints and
    // embedding .pt files carry beside the weights (the allow list of A1111's modules/safe.py).
    private static readonly HashSet<string> InertClasses = new(StringComparer.Ordinal)
    {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint", // the key of its callback state
        "pytorch_lightning.callbacks.model_checkpoint",                 // the module, named the same way
        "torch.nn.modules.container.ParameterDict",                     // embedding .pt files: string_to_param
        "numpy.dtype",                                                   // the dtype of a numpy scalar
    };

    private readonly byte[] _data;
    private readonly bool _complete;
    private readonly Func<PickleTuple, object?> _persistentLoad;
    private readonly List<object?> _stack = new();
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _position;

    private RestrictedUnpickler(byte[] data, int start, bool complete, Func<PickleTuple, object?> persistentLoad)
    {
        _data = data;
        _position = start;
        _complete = complete;
        _persistentLoad = persistentLoad;
    }

    /// <summary>The storage element type a storage class name (e.g. <c>FloatStorage</c>) stands for.</summary>
    public static bool TryGetStorageType(PickleGlobal global, out ScalarType dtype)
    {
        dtype = default;
        return global.Module == "torch" && StorageTypes.TryGetValue(global.Name, out dtype);
    }

    /// <summary>Unpickles <paramref name="data"/>; <paramref name="persistentLoad"/> resolves BINPERSID ids.</summary>
    public static object? Load(byte[] data, Func<PickleTuple, object?> persistentLoad) =>
        new RestrictedUnpickler(data, 0, complete: true, persistentLoad).Run();

    /// <summary>
    /// Unpickles the pickle that starts at <paramref name="start"/> of <paramref name="data"/> (the legacy format puts
    /// several back to back); <paramref name="end"/> is the byte after its STOP. When <paramref name="complete"/> is
    /// false, <paramref name="data"/> is only the start of a file and running off its end throws
    /// <see cref="PickleNeedsMoreDataException"/>, so the caller can read more and try again.
    /// </summary>
    public static object? Load(
        byte[] data, int start, bool complete, Func<PickleTuple, object?> persistentLoad, out int end)
    {
        var unpickler = new RestrictedUnpickler(data, start, complete, persistentLoad);
        var result = unpickler.Run();
        end = unpickler._position;
        return result;
    }

    private object? Run()
    {
        while (true)
        {
            int opcodeAt = _position;
            byte op = ReadByte();
            switch (op)
            {
                case 0x80: // PROTO
                    {
                        int protocol = ReadByte();
                        if (protocol > 5) throw Malformed($"pickle protocol {protocol} is newer than 5", opcodeAt);
                        break;
                    }
                case 0x95: // FRAME: a length prefix for buffering; the content follows inline.
                    Skip(8);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1 || _marks.Count != 0)
                        throw Malformed($"STOP with {_stack.Count} values on the stack", opcodeAt);
                    return _stack[0];
                case (byte)'(': // MARK
                    if (_marks.Count >= MaxMarkDepth) throw Malformed("too many nested marks", opcodeAt);
                    _marks.Push(_stack.Count);
                    break;
                case (byte)'0': // POP
                    if (_marks.Count > 0 && _marks.Peek() == _stack.Count) _marks.Pop();
                    else Pop(opcodeAt);
                    break;
                case (byte)'1': // POP_MARK
                    PopToMark(opcodeAt);
                    break;
                case (byte)'2': // DUP
                    Push(Peek(opcodeAt), opcodeAt);
                    break;

                case (byte)'}': Push(new PickleDict(), opcodeAt); break; // EMPTY_DICT
                case (byte)']': Push(new PickleList(), opcodeAt); break; // EMPTY_LIST
                case (byte)')': Push(new PickleTuple(Array.Empty<object?>()), opcodeAt); break; // EMPTY_TUPLE
                case 0x8f: Push(new PickleList(), opcodeAt); break; // EMPTY_SET
                case (byte)'N': Push(null, opcodeAt); break; // NONE
                case 0x88: Push(true, opcodeAt); break; // NEWTRUE
                case 0x89: Push(false, opcodeAt); break; // NEWFALSE

                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)), opcodeAt); break; // BININT
                case (byte)'K': Push((long)ReadByte(), opcodeAt); break; // BININT1
                // BININT2
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)), opcodeAt); break;
                case 0x8a: Push(ReadLong(ReadByte(), opcodeAt), opcodeAt); break; // LONG1
                case 0x8b: Push(ReadLong(ReadLength(4, opcodeAt), opcodeAt), opcodeAt); break; // LONG4
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8)), opcodeAt); break; // BINFLOAT

                case (byte)'X': Push(ReadUtf8(ReadLength(4, opcodeAt), opcodeAt), opcodeAt); break; // BINUNICODE
                case 0x8c: Push(ReadUtf8(ReadByte(), opcodeAt), opcodeAt); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(ReadLength(8, opcodeAt), opcodeAt), opcodeAt); break; // BINUNICODE8
                case (byte)'U': Push(ReadLatin1(ReadByte()), opcodeAt); break; // SHORT_BINSTRING
                case (byte)'T': Push(ReadLatin1(ReadLength(4, opcodeAt)), opcodeAt); break; // BINSTRING
                case (byte)'C': Push(Take(ReadByte()).ToArray(), opcodeAt); break; // SHORT_BINBYTES
                case (byte)'B': Push(Take(ReadLength(4, opcodeAt)).ToArray(), opcodeAt); break; // BINBYTES
                case 0x8e: Push(Take(ReadLength(8, opcodeAt)).ToArray(), opcodeAt); break; // BINBYTES8
                case 0x96: Push(Take(ReadLength(8, opcodeAt)).ToArray(), opcodeAt); break; // BYTEARRAY8

                case (byte)'t': Push(new PickleTuple(PopToMark(opcodeAt).ToArray()), opcodeAt); break; // TUPLE
                case 0x85: Push(new PickleTuple(PopMany(1, opcodeAt)), opcodeAt); break; // TUPLE1
                case 0x86: Push(new PickleTuple(PopMany(2, opcodeAt)), opcodeAt); break; // TUPLE2
                case 0x87: Push(new PickleTuple(PopMany(3, opcodeAt)), opcodeAt); break; // TUPLE3
                case (byte)'l': // LIST
                    {
                        var list = new PickleList();
                        list.AddRange(PopToMark(opcodeAt));
                        Push(list, opcodeAt);
                        break;
                    }
                case 0x91: // FROZENSET
                    {
                        var list = new PickleList();
                        list.AddRange(PopToMark(opcodeAt));
                        Push(list, opcodeAt);
                        break;
                    }
                case (byte)'d': // DICT
                    {
                        var items = PopToMark(opcodeAt);
                        var dict = new PickleDict();
                        SetItems(dict, items, opcodeAt);
                        Push(dict, opcodeAt);
                        break;
                    }
                case (byte)'a': // APPEND
                    {
                        var value = Pop(opcodeAt);
                        AsList(Peek(opcodeAt), "APPEND", opcodeAt).Add(value);
                        break;
                    }
                case (byte)'e': // APPENDS
                case 0x90: // ADDITEMS
                    {
                        var items = PopToMark(opcodeAt);
                        AsList(Peek(opcodeAt), op == 0x90 ? "ADDITEMS" : "APPENDS", opcodeAt).AddRange(items);
                        break;
                    }
                case (byte)'s': // SETITEM
                    {
                        var value = Pop(opcodeAt);
                        var key = Pop(opcodeAt);
                        AsDict(Peek(opcodeAt), "SETITEM", opcodeAt).Set(key, value);
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        var items = PopToMark(opcodeAt);
                        SetItems(AsDict(Peek(opcodeAt), "SETITEMS", opcodeAt), items, opcodeAt);
                        break;
                    }

                case (byte)'q': Memoize(ReadByte(), opcodeAt); break; // BINPUT
                // LONG_BINPUT
                case (byte)'r': Memoize(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), opcodeAt); break;
                case 0x94: Memoize(_memo.Count, opcodeAt); break; // MEMOIZE
                case (byte)'h': Push(Recall(ReadByte(), opcodeAt), opcodeAt); break; // BINGET
                // LONG_BINGET
                case (byte)'j': Push(
                    Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), opcodeAt), opcodeAt); break;

                case (byte)'c': // GLOBAL: "module\nname\n"
                    {
                        var module = ReadLine(opcodeAt);
                        var name = ReadLine(opcodeAt);
                        Push(CheckGlobal(module, name, "GLOBAL", opcodeAt), opcodeAt);
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        var name = Pop(opcodeAt);
                        var module = Pop(opcodeAt);
                        if (module is not string m || name is not string n)
                            throw Malformed("STACK_GLOBAL needs two strings", opcodeAt);
                        Push(CheckGlobal(m, n, "STACK_GLOBAL", opcodeAt), opcodeAt);
                        break;
                    }
                case (byte)'R': // REDUCE: callable(*args)
                    {
                        var args = Pop(opcodeAt);
                        var callable = Pop(opcodeAt);
                        Push(Call(callable, args, opcodeAt), opcodeAt);
                        break;
                    }
                case 0x81: // NEWOBJ: cls.__new__(cls, *args)
                    {
                        var args = Pop(opcodeAt);
                        var cls = Pop(opcodeAt);
                        Push(New(cls, args, "NEWOBJ", opcodeAt), opcodeAt);
                        break;
                    }
                case 0x92: // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
                    {
                        var kwargs = Pop(opcodeAt);
                        var args = Pop(opcodeAt);
                        var cls = Pop(opcodeAt);
                        if (kwargs is not PickleDict { Count: 0 })
                            throw Malformed("NEWOBJ_EX with keyword arguments is not supported", opcodeAt);
                        Push(New(cls, args, "NEWOBJ_EX", opcodeAt), opcodeAt);
                        break;
                    }
                case (byte)'b': // BUILD: obj.__setstate__(state) in Python; here only plain state on our own values.
                    {
                        var state = Pop(opcodeAt);
                        Build(Peek(opcodeAt), state, opcodeAt);
                        break;
                    }
                case (byte)'Q': // BINPERSID
                    {
                        var pid = Pop(opcodeAt);
                        if (pid is not PickleTuple tuple) throw Malformed("persistent id is not a tuple", opcodeAt);
                        Push(_persistentLoad(tuple), opcodeAt);
                        break;
                    }
                default:
                    {
                        var name = OpcodeName(op);
                        throw new UnsafeCheckpointException(
                            $"Refused pickle opcode {name} (0x{op:x2}) at byte {opcodeAt}: the restricted unpickler " +
                            "only interprets the opcodes torch.save writes.", refusedOpcode: name);
                    }
            }
        }
    }

    private static PickleGlobal CheckGlobal(string module, string name, string opcode, int at)
    {
        var global = new PickleGlobal(module, name);
        if (AllowedCallables.Contains(global.FullName) || InertClasses.Contains(global.FullName) ||
            TryGetStorageType(global, out _)) return global;
        throw new UnsafeCheckpointException(
            $"Refused global '{global.FullName}' named by {opcode} at byte {at}: a checkpoint may only reference " +
            "tensor rebuild functions, storage types, OrderedDict, set, numpy scalars and a few inert classes " +
            "(Lightning's ModelCheckpoint, ParameterDict). The file may be malicious; nothing was run.",
            refusedGlobal: global.FullName);
    }

    private object? Call(object? callable, object? args, int at)
    {
        if (callable is not PickleGlobal global) throw Malformed("REDUCE on a value that is not a global", at);
        if (args is not PickleTuple a) throw Malformed($"REDUCE arguments of {global} are not a tuple", at);
        switch (global.FullName)
        {
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                {
                    // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
                    if (a.Count < 4) throw Malformed($"{global} needs at least 4 arguments, got {a.Count}", at);
                    if (a[0] is not TorchStorageRef storage)
                        throw Malformed($"{global}: first argument is not a storage", at);
                    var offset = ToInt64(a[1], "storage_offset", at);
                    var sizes = ToInt64Array(a[2], "size", at);
                    var strides = ToInt64Array(a[3], "stride", at);
                    if (sizes.Length != strides.Length)
                        throw Malformed($"{global}: size has {sizes.Length} dims but stride has {strides.Length}", at);
                    return new TorchTensorRef(storage, offset, sizes, strides);
                }
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                if (a.Count < 1 || a[0] is not TorchTensorRef data)
                    throw Malformed($"{global}: first argument is not a tensor", at);
                return data;
            case "collections.OrderedDict":
                if (a.Count != 0) throw Malformed("OrderedDict(...) with arguments is not supported", at);
                return new PickleDict();
            case "_codecs.encode":
                if (a.Count != 2 || a[0] is not string text || a[1] is not string encoding || encoding != "latin1")
                    throw Malformed("_codecs.encode is only allowed as encode(str, 'latin1')", at);
                return Encoding.Latin1.GetBytes(text);
            case "numpy.core.multiarray.scalar":
            case "numpy._core.multiarray.scalar":
                if (a.Count != 2 || a[0] is not NumpyDType dtype || a[1] is not byte[] raw)
                    throw Malformed($"{global} is only allowed as scalar(dtype, bytes)", at);
                return dtype.ToScalar(raw) ?? new PickleObject(global);
            case "numpy.dtype":
                if (a.Count < 1 || a[0] is not string code) throw Malformed("numpy.dtype needs a type code", at);
                return new NumpyDType(code);
            case "builtins.set":
            case "__builtin__.set":
                {
                    var set = new PickleList();
                    if (a.Count == 1 && a[0] is PickleList items) set.AddRange(items);
                    else if (a.Count != 0) throw Malformed("set(...) needs a list", at);
                    return set;
                }
            default:
                if (InertClasses.Contains(global.FullName)) return new PickleObject(global);
                throw new UnsafeCheckpointException(
                    $"Refused to call '{global.FullName}' at byte {at}: it is a type name, not a rebuild function.",
                    refusedGlobal: global.FullName);
        }
    }

    private static object New(object? cls, object? args, string opcode, int at)
    {
        if (cls is PickleGlobal { FullName: "collections.OrderedDict" } && args is PickleTuple { Count: 0 })
            return new PickleDict();
        if (cls is PickleGlobal inert && InertClasses.Contains(inert.FullName) && args is PickleTuple)
            return new PickleObject(inert); // nothing of the class is run: the object is a name and an identity
        throw new UnsafeCheckpointException(
            $"Refused {opcode} of '{cls}' at byte {at}: only OrderedDict and inert placeholders may be instantiated.",
            refusedGlobal: cls?.ToString());
    }

    private static void Build(object? target, object? state, int at)
    {
        // OrderedDict state_dicts carry {'_metadata': ...} as instance attributes (not needed for loading, so
        // dropped); tensors may carry an empty state.
        if (state is PickleTuple { Count: 2 } pair && pair[1] is null) state = pair[0];
        switch (target)
        {
            case PickleDict when state is null or PickleDict:
                return;
            case TorchTensorRef when state is null or PickleDict { Count: 0 }:
                return;
            case PickleObject placeholder:
                placeholder.State = state; // kept as data for the caller to read; nothing of the class runs
                return;
            case NumpyDType dtype:
                // numpy.dtype.__setstate__((version, byte order, ...)): only the byte order matters to read a scalar.
                if (state is PickleTuple { Count: >= 2 } dtypeState && dtypeState[1] is string order)
                    dtype.ByteOrder = order;
                return;
            default:
                throw Malformed($"BUILD on {Describe(target)} with {Describe(state)} state is not supported", at);
        }
    }

    private void SetItems(PickleDict dict, List<object?> items, int at)
    {
        if (items.Count % 2 != 0) throw Malformed("odd number of items for a dict", at);
        for (int i = 0; i < items.Count; i += 2) dict.Set(items[i], items[i + 1]);
    }

    private static List<object?> AsList(object? value, string opcode, int at) =>
        value as PickleList ?? throw Malformed($"{opcode} on {Describe(value)}, not a list", at);

    private static PickleDict AsDict(object? value, string opcode, int at) =>
        value as PickleDict ?? throw Malformed($"{opcode} on {Describe(value)}, not a dict", at);

    private static long ToInt64(object? value, string what, int at) =>
        value is long l ? l : throw Malformed($"{what} is {Describe(value)}, not an integer", at);

    private static long[] ToInt64Array(object? value, string what, int at)
    {
        if (value is not PickleTuple tuple) throw Malformed($"{what} is {Describe(value)}, not a tuple", at);
        var result = new long[tuple.Count];
        for (int i = 0; i < result.Length; i++) result[i] = ToInt64(tuple[i], what, at);
        return result;
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        PickleGlobal g => g.FullName,
        PickleDict => "a dict",
        PickleList => "a list",
        PickleTuple => "a tuple",
        TorchTensorRef => "a tensor",
        TorchStorageRef => "a storage",
        PickleObject o => "a " + o.Class.FullName,
        NumpyDType => "a numpy.dtype",
        _ => "a " + value.GetType().Name,
    };

    private void Memoize(long index, int at)
    {
        if (_memo.Count >= MaxMemoEntries && !_memo.ContainsKey(index))
            throw Malformed("memo grows past its limit", at);
        _memo[index] = Peek(at);
    }

    private object? Recall(long index, int at) =>
        _memo.TryGetValue(index, out var value) ? value : throw Malformed($"memo entry {index} was never stored", at);

    private void Push(object? value, int at)
    {
        if (_stack.Count >= MaxStackDepth) throw Malformed("stack grows past its limit", at);
        _stack.Add(value);
    }

    private object? Peek(int at)
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks.Peek() == _stack.Count))
            throw Malformed("stack underflow", at);
        return _stack[^1];
    }

    private object? Pop(int at)
    {
        var value = Peek(at);
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object?[] PopMany(int count, int at)
    {
        var floor = _marks.Count > 0 ? _marks.Peek() : 0;
        if (_stack.Count - floor < count) throw Malformed("stack underflow", at);
        var items = _stack.GetRange(_stack.Count - count, count).ToArray();
        _stack.RemoveRange(_stack.Count - count, count);
        return items;
    }

    private List<object?> PopToMark(int at)
    {
        if (_marks.Count == 0) throw Malformed("no MARK to pop to", at);
        var mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private byte ReadByte()
    {
        if (_position >= _data.Length) throw Truncated();
        return _data[_position++];
    }

    private ReadOnlySpan<byte> Take(long count)
    {
        if (count < 0 || count > _data.Length - _position) throw Truncated(count);
        var span = new ReadOnlySpan<byte>(_data, _position, (int)count);
        _position += (int)count;
        return span;
    }

    private void Skip(long count) => Take(count);

    private long ReadLength(int width, int at)
    {
        var bytes = Take(width);
        long length = width == 4
            ? BinaryPrimitives.ReadUInt32LittleEndian(bytes) : BinaryPrimitives.ReadInt64LittleEndian(bytes);
        if (length > _data.Length - _position && !_complete) throw new PickleNeedsMoreDataException(_position + length);
        if (length < 0 || length > _data.Length - _position)
            throw new CheckpointFormatException(
                $"Pickle ends early: the value at byte {at} declares {length} bytes " +
                $"but only {_data.Length - _position} remain (truncated file?).");
        return length;
    }

    private object ReadLong(long byteCount, int at)
    {
        if (byteCount > MaxLongBytes) throw Malformed($"integer of {byteCount} bytes is too large", at);
        var value = new BigInteger(Take(byteCount), isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private string ReadUtf8(long length, int at)
    {
        var bytes = Take(length);
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new CheckpointFormatException($"Invalid UTF-8 string in pickle at byte {at}.", e);
        }
    }

    private string ReadLatin1(long length) => Encoding.Latin1.GetString(Take(length));

    private string ReadLine(int at)
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position, Math.Min(256, _data.Length - _position));
        if (end < 0 && !_complete && _data.Length - _position < 256)
            throw new PickleNeedsMoreDataException(_position + 256);
        if (end < 0) throw Malformed("GLOBAL name is not newline-terminated within 256 bytes", at);
        var line = Encoding.ASCII.GetString(_data, _position, end - _position);
        _position = end + 1;
        return line;
    }

    private CheckpointFormatException Truncated(long wanted = 1) => _complete
        ? new CheckpointFormatException(
            $"Pickle ends early: {wanted} more byte(s) needed at byte {_position} of {_data.Length} (truncated file?).")
        : new PickleNeedsMoreDataException(_position + wanted);

    private static CheckpointFormatException Malformed(string what, int at) =>
        new($"Malformed pickle at byte {at}: {what}.");

    private static string OpcodeName(byte op) => op switch
    {
        (byte)'i' => "INST",
        (byte)'o' => "OBJ",
        (byte)'P' => "PERSID",
        (byte)'I' => "INT",
        (byte)'L' => "LONG",
        (byte)'F' => "FLOAT",
        (byte)'S' => "STRING",
        (byte)'V' => "UNICODE",
        (byte)'g' => "GET",
        (byte)'p' => "PUT",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => $"unknown opcode 0x{op:x2}",
    };
}
