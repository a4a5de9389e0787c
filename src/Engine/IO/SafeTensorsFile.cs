using System.IO.MemoryMappedFiles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>Element types a safetensors header may name.</summary>
public enum SafeTensorDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL }

/// <summary>One tensor entry of a safetensors header; offsets are relative to the data section.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// A memory-mapped safetensors file (FIRST VERSION: basic parsing; hardening lands with the IO work).
/// </summary>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _dataStart;

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, long dataStart,
        IReadOnlyDictionary<string, SafeTensorInfo> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path; _map = map; _view = view; _dataStart = dataStart; Tensors = tensors; Metadata = metadata;
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafeTensorsFile Open(string path)
    {
        var length = new FileInfo(path).Length;
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        long headerLength = view.ReadInt64(0);
        var headerBytes = new byte[headerLength];
        view.ReadArray(8, headerBytes, 0, (int)headerLength);
        using var doc = JsonDocument.Parse(headerBytes);
        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                continue;
            }
            var dtype = Enum.Parse<SafeTensorDType>(prop.Value.GetProperty("dtype").GetString()!);
            var shape = prop.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            var offsets = prop.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            tensors[prop.Name] = new SafeTensorInfo(prop.Name, dtype, shape, offsets[0], offsets[1]);
        }
        return new SafeTensorsFile(path, map, view, 8 + headerLength, tensors, metadata);
    }

    /// <summary>Reads one tensor, converted to <paramref name="dtype"/> when given.</summary>
    public Tensor Read(string name, ScalarType? dtype = null, Device? device = null)
    {
        var info = Tensors[name];
        var bytes = new byte[info.ByteLength];
        _view.ReadArray(_dataStart + info.Begin, bytes, 0, bytes.Length);
        var scalarType = ToScalarType(info.DType);
        var raw = torch.empty(info.Shape, scalarType);
        raw.bytes = bytes;
        var result = raw;
        if (dtype is { } target && target != scalarType) result = raw.to(target);
        if (device is not null) result = result.to(device);
        return result;
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

    public void Dispose()
    {
        _view.Dispose();
        _map.Dispose();
    }
}
