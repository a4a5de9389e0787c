using System.IO.MemoryMappedFiles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>
/// A memory-mapped safetensors file. The whole header is validated in <see cref="Open"/> (lengths, JSON shape,
/// dtypes, offsets inside the data section, no overlaps, byte length = elements × dtype size) before any tensor
/// data is touched, so <see cref="Read"/> never reads outside the mapping.
/// </summary>
public sealed unsafe class SafeTensorsFile : ITensorFile
{
    /// <summary>Same bound as the reference implementation: a larger header is refused as malformed.</summary>
    public const long MaxHeaderLength = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _data;
    private readonly long _dataLength;
    private bool _disposed;

    private SafeTensorsFile(
        string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* data, long dataLength,
        IReadOnlyDictionary<string, SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path; _map = map; _view = view; _data = data; _dataLength = dataLength;
        Tensors = tensors; Metadata = metadata;
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps <paramref name="path"/> read-only and validates its header.</summary>
    /// <exception cref="SafeTensorsFormatException">The file is not a well-formed safetensors file.</exception>
    public static SafeTensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool pointerAcquired = false;
        try
        {
            long fileLength = stream.Length;
            if (fileLength < 8)
                throw new SafeTensorsFormatException(
                    path, null, $"file is {fileLength} bytes, shorter than the 8-byte header length");
            map = MemoryMappedFile.CreateFromFile(
                stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
            byte* basePointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
            pointerAcquired = true;
            basePointer += view.PointerOffset;

            ulong declared = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(
                new ReadOnlySpan<byte>(basePointer, 8));
            if (declared > (ulong)MaxHeaderLength)
                throw new SafeTensorsFormatException(
                    path, null, $"header length {declared} exceeds the {MaxHeaderLength}-byte limit");
            long headerLength = (long)declared;
            if (headerLength > fileLength - 8)
                throw new SafeTensorsFormatException(
                    path, null, $"header length {headerLength} runs past the end of the {fileLength}-byte file");

            var headerBytes = new ReadOnlySpan<byte>(basePointer + 8, (int)headerLength);
            long dataLength = fileLength - 8 - headerLength;
            var (tensors, metadata) = ParseHeader(path, headerBytes, dataLength);
            return new SafeTensorsFile(path, map, view, basePointer + 8 + headerLength, dataLength, tensors, metadata);
        }
        catch
        {
            if (pointerAcquired) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            if (map is not null) map.Dispose(); else stream.Dispose();
            throw;
        }
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(
        string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            // The reference writer pads the header with trailing spaces; JSON allows them.
            var reader = new Utf8JsonReader(
                header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 16 });
            doc = JsonDocument.ParseValue(ref reader);
            if (reader.BytesConsumed < header.Length
                && header[(int)reader.BytesConsumed..].IndexOfAnyExcept(" \t\n\r"u8) >= 0)
                throw new SafeTensorsFormatException(path, null, "header has data after its JSON object");
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(path, null, $"header is not valid JSON ({e.Message})", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException(path, null, $"header is a JSON {root.ValueKind}, not an object");

            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var prop in root.EnumerateObject())
            {
                if (prop.Name == MetadataKey)
                {
                    if (sawMetadata) throw new SafeTensorsFormatException(path, null, $"duplicate key '{MetadataKey}'");
                    sawMetadata = true;
                    ParseMetadata(path, prop.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(prop.Name))
                    throw new SafeTensorsFormatException(path, prop.Name, "duplicate tensor name in header");
                tensors.Add(prop.Name, ParseTensor(path, prop.Name, prop.Value, dataLength));
            }

            CheckNoOverlap(path, tensors.Values);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement element, Dictionary<string, string> metadata)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(
                path, null, $"'{MetadataKey}' is a JSON {element.ValueKind}, not an object of strings");
        foreach (var entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafeTensorsFormatException(
                    path, null,
                    $"'{MetadataKey}' entry '{entry.Name}' is a JSON {entry.Value.ValueKind}, not a string");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new SafeTensorsFormatException(path, null, $"duplicate '{MetadataKey}' key '{entry.Name}'");
        }
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement element, long dataLength)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, name, $"entry is a JSON {element.ValueKind}, not an object");

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in element.EnumerateObject())
        {
            ref JsonElement? slot = ref dtypeElement;
            switch (field.Name)
            {
                case "dtype": slot = ref dtypeElement; break;
                case "shape": slot = ref shapeElement; break;
                case "data_offsets": slot = ref offsetsElement; break;
                default: continue; // the reference reader ignores unknown fields too
            }
            if (slot is not null) throw new SafeTensorsFormatException(path, name, $"duplicate field '{field.Name}'");
            slot = field.Value;
        }
        if (dtypeElement is not { } dtypeJson) throw new SafeTensorsFormatException(path, name, "missing 'dtype'");
        if (shapeElement is not { } shapeJson) throw new SafeTensorsFormatException(path, name, "missing 'shape'");
        if (offsetsElement is not { } offsetsJson)
            throw new SafeTensorsFormatException(path, name, "missing 'data_offsets'");

        string dtypeText = dtypeJson.ValueKind == JsonValueKind.String
            ? dtypeJson.GetString()! : dtypeJson.GetRawText();
        if (dtypeJson.ValueKind != JsonValueKind.String || !TryParseDType(dtypeText, out var dtype))
            throw new SafeTensorsFormatException(path, name, $"unknown dtype {dtypeText}");

        if (shapeJson.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException(path, name, $"'shape' is a JSON {shapeJson.ValueKind}, not an array");
        var shape = new long[shapeJson.GetArrayLength()];
        int i = 0;
        foreach (var dim in shapeJson.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long size) || size < 0)
                throw new SafeTensorsFormatException(
                    path, name, $"shape entry {dim.GetRawText()} is not a non-negative integer");
            shape[i++] = size;
        }

        if (offsetsJson.ValueKind != JsonValueKind.Array || offsetsJson.GetArrayLength() != 2)
            throw new SafeTensorsFormatException(
                path, name, $"'data_offsets' {offsetsJson.GetRawText()} is not an array of two integers");
        var offsets = new long[2];
        i = 0;
        foreach (var offset in offsetsJson.EnumerateArray())
        {
            if (offset.ValueKind != JsonValueKind.Number || !offset.TryGetInt64(out long value) || value < 0)
                throw new SafeTensorsFormatException(
                    path, name, $"data offset {offset.GetRawText()} is not a non-negative integer");
            offsets[i++] = value;
        }
        long begin = offsets[0], end = offsets[1];
        if (begin > end)
            throw new SafeTensorsFormatException(path, name, $"data_offsets [{begin}, {end}] begin after they end");
        if (end > dataLength)
            throw new SafeTensorsFormatException(
                path, name,
                $"data_offsets [{begin}, {end}] run past the {dataLength}-byte " +
                $"data section (file truncated or offsets wrong)");

        long expected;
        try
        {
            expected = checked(shape.Aggregate(1L, (product, size) => checked(product * size)) * ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new SafeTensorsFormatException(
                path, name, $"shape [{string.Join(", ", shape)}] of {dtype} overflows a 64-bit byte count");
        }
        if (expected != end - begin)
            throw new SafeTensorsFormatException(path, name,
                $"shape [{string.Join(", ", shape)}] of {dtype} needs {expected} " +
                $"bytes but data_offsets [{begin}, {end}] hold {end - begin}");

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static void CheckNoOverlap(string path, IEnumerable<SafeTensorInfo> tensors)
    {
        SafeTensorInfo? previous = null;
        foreach (var info in tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.Begin))
        {
            if (previous is not null && info.Begin < previous.End)
                throw new SafeTensorsFormatException(path, info.Name,
                    $"data_offsets [{info.Begin}, {info.End}] overlap tensor " +
                    $"'{previous.Name}' [{previous.Begin}, {previous.End}]");
            previous = info;
        }
    }

    private static bool TryParseDType(string text, out SafeTensorDType dtype)
    {
        // Exact, case-sensitive names only: Enum.TryParse would also accept numbers and other casings.
        foreach (var candidate in Enum.GetValues<SafeTensorDType>())
        {
            if (candidate.ToString() == text) { dtype = candidate; return true; }
        }
        dtype = default;
        return false;
    }

    /// <summary>Bytes per element of a safetensors dtype.</summary>
    public static int ElementSize(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 => 2,
        SafeTensorDType.I8 or SafeTensorDType.U8 or SafeTensorDType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown safetensors dtype"),
    };

    /// <summary>Looks up a tensor entry, naming the tensor and file when absent.</summary>
    public IReadOnlyCollection<string> Keys => (IReadOnlyCollection<string>)Tensors.Keys;

    public long[] ShapeOf(string key) => Info(key).Shape;

    public ScalarType DTypeOf(string key) => ToScalarType(Info(key).DType);

    public SafeTensorInfo Info(string name) =>
        Tensors.TryGetValue(name, out var info)
            ? info : throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>
    /// Reads one tensor, converted to <paramref name="dtype"/> and moved to <paramref name="device"/> when given.
    /// The result owns its storage (the file may be disposed afterwards); it is built straight from the mapped bytes,
    /// with one native allocation of the result and no managed copy of the data.
    /// </summary>
    public Tensor Read(string name, ScalarType? dtype = null, Device? device = null)
    {
        var info = Info(name);
        var sourceType = ToScalarType(info.DType);
        var targetType = dtype ?? sourceType;
        var targetDevice = device ?? torch.CPU;
        if (info.ByteLength == 0) return torch.empty(info.Shape, targetType, targetDevice);
        using var mapped = MapTensor(info);
        return mapped.to(targetType, targetDevice, copy: true);
    }

    /// <inheritdoc/>
    public Tensor[] ReadMany(IReadOnlyList<string> keys, ScalarType dtype, bool shareFileMemory = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var requests = keys.Select(key => new Loading.SafeTensorsBulkReader.Request(Path, Info(key), dtype)).ToList();
        return Loading.SafeTensorsBulkReader.ReadAll(requests, shareFileMemory)!;
    }

    /// <summary>
    /// Copies one tensor into <paramref name="destination"/> (same shape; any dtype and device), converting on the fly:
    /// no intermediate tensor is allocated. Autograd is off for the copy.
    /// </summary>
    public void ReadInto(string name, Tensor destination)
    {
        var info = Info(name);
        if (!destination.shape.SequenceEqual(info.Shape))
            throw new ArgumentException(
                $"{Path}: tensor '{name}' has shape [{string.Join(", ", info.Shape)}] " +
                $"but the destination is [{string.Join(", ", destination.shape)}]",
                nameof(destination));
        if (info.ByteLength == 0) return;
        using var noGrad = torch.no_grad();
        using var mapped = MapTensor(info);
        destination.copy_(mapped);
    }

    /// <summary>A tensor viewing the mapped bytes (no copy); it must not outlive this file and must not
    /// be written.</summary>
    private Tensor MapTensor(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var scalarType = ToScalarType(info.DType);
        byte* source = _data + info.Begin;
        int elementSize = ElementSize(info.DType);
        if ((nuint)source % (nuint)elementSize == 0)
            return NativeTensors.FromBlob(source, info.Shape, scalarType);

        // Misaligned data (legal in the format, never written by the reference writer): stage one aligned copy.
        var staged = torch.empty(info.Shape, scalarType);
        Buffer.MemoryCopy(source, NativeTensors.DataPointer(staged), info.ByteLength, info.ByteLength);
        return staged;
    }

    public static ScalarType ToScalarType(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 => ScalarType.Float64,
        SafeTensorDType.F32 => ScalarType.Float32,
        SafeTensorDType.F16 => ScalarType.Float16,
        SafeTensorDType.BF16 => ScalarType.BFloat16,
        SafeTensorDType.I64 => ScalarType.Int64,
        SafeTensorDType.I32 => ScalarType.Int32,
        SafeTensorDType.I16 => ScalarType.Int16,
        SafeTensorDType.I8 => ScalarType.Int8,
        SafeTensorDType.U8 => ScalarType.Byte,
        SafeTensorDType.BOOL => ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>The safetensors dtype that stores <paramref name="type"/>.</summary>
    public static SafeTensorDType FromScalarType(ScalarType type) => type switch
    {
        ScalarType.Float64 => SafeTensorDType.F64,
        ScalarType.Float32 => SafeTensorDType.F32,
        ScalarType.Float16 => SafeTensorDType.F16,
        ScalarType.BFloat16 => SafeTensorDType.BF16,
        ScalarType.Int64 => SafeTensorDType.I64,
        ScalarType.Int32 => SafeTensorDType.I32,
        ScalarType.Int16 => SafeTensorDType.I16,
        ScalarType.Int8 => SafeTensorDType.I8,
        ScalarType.Byte => SafeTensorDType.U8,
        ScalarType.Bool => SafeTensorDType.BOOL,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "no safetensors dtype for this scalar type"),
    };

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
