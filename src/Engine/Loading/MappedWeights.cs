using System.Collections.Concurrent;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Tensors whose storage is a copy-on-write memory mapping of a safetensors file: the weights are the page-cache
/// pages themselves, so loading copies nothing and allocates nothing (a write to such a tensor gets a private copy
/// of the touched page, never reaches the file). The mapping lives until the last tensor viewing it is freed:
/// each tensor holds one reference, released by libtorch's deleter.
/// </summary>
internal static unsafe class MappedWeights
{
    /// <summary>One mapped file; references: one per live tensor plus the opener's until
    /// <see cref="Release"/>.</summary>
    internal sealed class Mapping
    {
        private readonly MemoryMappedFile _map;
        private readonly MemoryMappedViewAccessor _view;
        private int _references = 1;

        internal Mapping(string path)
        {
            Path = path;
            // The file is opened read-only by us (CreateFromFile(path, ...) would ask for write access: refused for a
            // model the user may only read, and on Windows in conflict with the loader's own read handles), sharing
            // read and delete so hashing, header reads and a re-download are not locked out. A copy-on-write view of a
            // read-only handle is allowed: a write gets a private page and never reaches the file.
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            try
            {
                _map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.CopyOnWrite,
                    HandleInheritability.None, leaveOpen: false);
            }
            catch
            {
                stream.Dispose();
                throw;
            }
            try
            {
                _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.CopyOnWrite);
                byte* pointer = null;
                _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
                Base = pointer + _view.PointerOffset;
            }
            catch
            {
                _view?.Dispose();
                _map.Dispose();
                throw;
            }
        }

        internal string Path { get; }
        internal byte* Base { get; }

        internal void AddReference() => Interlocked.Increment(ref _references);

        /// <summary>Drops one reference; the last one unmaps the file.</summary>
        internal void Release()
        {
            if (Interlocked.Decrement(ref _references) != 0) return;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
        }
    }

    // Tensor data pointer → the mapping it lives in (the deleter only gets the pointer).
    private static readonly ConcurrentDictionary<nint, Mapping> Owners = new();

    /// <summary>Tensors alive now that view a mapped file (each keeps its file mapped).</summary>
    internal static int LiveViews => Owners.Count;

    /// <summary>Whether <paramref name="tensor"/>'s storage starts a view of a mapped file.</summary>
    internal static bool IsMapped(Tensor tensor) =>
        tensor.device_type == DeviceType.CPU && Owners.ContainsKey((nint)NativeTensors.DataPointer(tensor));

    /// <summary>
    /// A CPU tensor over <paramref name="byteOffset"/> of the mapping, or null when it cannot be one (misaligned
    /// data, or another tensor already starts at that address): the caller then copies instead.
    /// </summary>
    internal static Tensor? TryView(Mapping mapping, long byteOffset, long[] shape, ScalarType type, int elementSize)
    {
        byte* data = mapping.Base + byteOffset;
        if ((nuint)data % (nuint)elementSize != 0) return null;
        if (!Owners.TryAdd((nint)data, mapping)) return null;
        mapping.AddReference();
        try
        {
            return NativeTensors.FromBlob(data, shape, type, &Deleter);
        }
        catch
        {
            Owners.TryRemove((nint)data, out _);
            mapping.Release();
            throw;
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void Deleter(void* data)
    {
        if (Owners.TryRemove((nint)data, out var mapping)) mapping.Release();
    }
}
