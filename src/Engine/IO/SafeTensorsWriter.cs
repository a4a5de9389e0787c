using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>Writes safetensors files (used to save weights and to make random-weight test models).</summary>
public static unsafe class SafeTensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> in the given order, data packed back to back, header padded with spaces so
    /// the data section starts on an 8-byte boundary. The file appears atomically: it is written to a temporary file
    /// in the same folder, then renamed over <paramref name="path"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Duplicate or reserved tensor names, or a dtype safetensors
    /// cannot store.</exception>
    public static void Write(string path, IEnumerable<(string name, Tensor tensor)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        path = Path.GetFullPath(path);
        var entries = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in entries)
        {
            if (name == "__metadata__")
                throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor", nameof(tensors));
            if (!names.Add(name)) throw new ArgumentException($"tensor name '{name}' appears twice", nameof(tensors));
            ArgumentNullException.ThrowIfNull(tensor, name);
            _ = SafeTensorsFile.FromScalarType(tensor.dtype);
        }

        byte[] header = BuildHeader(entries, metadata);
        string folder = Path.GetDirectoryName(path)!;
        string temporary = Path.Combine(folder, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(
                temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> length = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var (_, tensor) in entries) WriteData(stream, tensor);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(temporary); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    private static byte[] BuildHeader(
        List<(string name, Tensor tensor)> entries, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, tensor) in entries)
            {
                long byteLength = checked(tensor.NumberOfElements * tensor.ElementSize);
                json.WriteStartObject(name);
                json.WriteString("dtype", SafeTensorsFile.FromScalarType(tensor.dtype).ToString());
                json.WriteStartArray("shape");
                foreach (long size in tensor.shape) json.WriteNumberValue(size);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + byteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += byteLength;
            }
            json.WriteEndObject();
        }
        int padded = (int)((buffer.Length + 7) / 8 * 8);
        while (buffer.Length < padded) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static void WriteData(Stream stream, Tensor tensor)
    {
        if (tensor.NumberOfElements == 0) return;
        // Only a tensor that is not already contiguous on the CPU gets a (native) staging copy.
        Tensor? staged = null;
        var source = tensor;
        if (source.device_type != DeviceType.CPU) source = staged = tensor.cpu();
        if (!source.is_contiguous())
        {
            var contiguous = source.contiguous();
            staged?.Dispose();
            source = staged = contiguous;
        }
        try
        {
            byte* data = NativeTensors.DataPointer(source);
            long remaining = tensor.NumberOfElements * tensor.ElementSize;
            const int chunk = 1 << 24;
            while (remaining > 0)
            {
                int count = (int)Math.Min(chunk, remaining);
                stream.Write(new ReadOnlySpan<byte>(data, count));
                data += count;
                remaining -= count;
            }
        }
        finally
        {
            staged?.Dispose();
        }
    }
}
