using Microsoft.Win32.SafeHandles;
using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Reads many safetensors entries into new CPU tensors with positional reads (<c>pread</c>) straight into each
/// tensor's storage: one copy from the page cache, no file mapping (whose touched pages would count in the
/// process's resident memory next to the weights), no managed buffer. Entries are read in parallel, largest first.
/// A dtype conversion (fp16 file into an fp32 model, ...) goes through a small per-entry staging tensor.
/// The headers must already be validated (<see cref="SafeTensorsFile.Open"/>).
/// With <c>mapWhenPossible</c>, an entry already in the wanted dtype is not read at all: its tensor views a
/// copy-on-write mapping of the file (<see cref="MappedWeights"/>), so the page cache is the storage.
/// </summary>
internal static unsafe class SafeTensorsBulkReader
{
    internal sealed record Request(string Path, SafeTensorInfo Info, ScalarType DType);

    private const long StagingBytes = 16L << 20;
    private const int MaxReadBytes = 1 << 30;

    /// <summary>One new tensor per request, in request order; on failure none is left allocated.</summary>
    internal static Tensor?[] ReadAll(IReadOnlyList<Request> requests, bool mapWhenPossible = false)
    {
        var results = new Tensor?[requests.Count];
        var files = new Dictionary<string, (SafeFileHandle Handle, long DataOffset)>(StringComparer.Ordinal);
        var mappings = new Dictionary<string, MappedWeights.Mapping>(StringComparer.Ordinal);
        try
        {
            foreach (var path in requests.Select(r => r.Path).Distinct(StringComparer.Ordinal))
            {
                var handle = File.OpenHandle(
                    path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, FileOptions.RandomAccess);
                files.Add(path, (handle, DataOffset(handle, path)));
            }
            var toRead = new List<int>();
            for (int i = 0; i < requests.Count; i++)
            {
                var request = requests[i];
                var info = request.Info;
                if (mapWhenPossible && info.ByteLength > 0 && SafeTensorsFile.ToScalarType(info.DType) == request.DType)
                {
                    if (!mappings.TryGetValue(request.Path, out var mapping))
                        mappings.Add(request.Path, mapping = new MappedWeights.Mapping(request.Path));
                    results[i] = MappedWeights.TryView(mapping, files[request.Path].DataOffset + info.Begin, info.Shape,
                        request.DType, SafeTensorsFile.ElementSize(info.DType));
                }
                if (results[i] is null) toRead.Add(i);
            }
            var order = toRead.OrderByDescending(i => requests[i].Info.ByteLength).ToArray();
            var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount) };
            Parallel.ForEach(order, options, i =>
            {
                var request = requests[i];
                var (handle, dataOffset) = files[request.Path];
                results[i] = ReadOne(handle, dataOffset, request);
            });
            return results;
        }
        catch
        {
            foreach (var tensor in results) tensor?.Dispose();
            throw;
        }
        finally
        {
            foreach (var (handle, _) in files.Values) handle.Dispose();
            foreach (var mapping in mappings.Values) mapping.Release(); // tensors keep their own references
        }
    }

    private static long DataOffset(SafeFileHandle handle, string path)
    {
        Span<byte> length = stackalloc byte[8];
        ReadExactly(handle, length, 0, path, "(header length)");
        return 8 + (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(length);
    }

    private static Tensor ReadOne(SafeFileHandle handle, long dataOffset, Request request)
    {
        var info = request.Info;
        var sourceType = SafeTensorsFile.ToScalarType(info.DType);
        var result = torch.empty(info.Shape, request.DType);
        try
        {
            if (info.ByteLength == 0) return result;
            long fileOffset = dataOffset + info.Begin;
            if (sourceType == request.DType)
            {
                ReadInto(
                    handle, NativeTensors.DataPointer(result), info.ByteLength, fileOffset, request.Path, info.Name);
                return result;
            }

            // Convert chunk by chunk: read source elements into a staging tensor, copy (converting) into the result.
            int elementSize = SafeTensorsFile.ElementSize(info.DType);
            long total = info.ByteLength / elementSize;
            long chunk = Math.Min(total, StagingBytes / elementSize);
            using var staging = torch.empty(chunk, sourceType);
            using var flat = result.view(-1);
            byte* stagingData = NativeTensors.DataPointer(staging);
            for (long start = 0; start < total; start += chunk)
            {
                long count = Math.Min(chunk, total - start);
                ReadInto(
                    handle, stagingData, count * elementSize,
                    fileOffset + start * elementSize, request.Path, info.Name);
                using var source = staging.narrow(0, 0, count);
                using var target = flat.narrow(0, start, count);
                target.copy_(source);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static void ReadInto(
        SafeFileHandle handle, byte* destination, long byteCount, long fileOffset, string path, string name)
    {
        while (byteCount > 0)
        {
            int count = (int)Math.Min(byteCount, MaxReadBytes);
            ReadExactly(handle, new Span<byte>(destination, count), fileOffset, path, name);
            destination += count;
            fileOffset += count;
            byteCount -= count;
        }
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long fileOffset, string path, string name)
    {
        while (buffer.Length > 0)
        {
            int read = RandomAccess.Read(handle, buffer, fileOffset);
            if (read <= 0)
                throw new SafeTensorsFormatException(
                    path, name,
                    $"file ended at byte {fileOffset} while reading tensor data (truncated since it was opened?)");
            buffer = buffer[read..];
            fileOffset += read;
        }
    }
}
