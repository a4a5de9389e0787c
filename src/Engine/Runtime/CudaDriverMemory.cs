using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// Free and total memory of a CUDA device, read through the NVIDIA driver API: TorchSharp 0.107 offers no such query.
/// </summary>
/// <remarks>
/// <para>Why the driver API and not the CUDA runtime's <c>cudaMemGetInfo</c>: the runtime library is named after its
/// major version (<c>cudart64_12.dll</c>, <c>libcudart.so.12</c>, <c>libcudart.so.13</c>) and each libtorch build
/// brings its own, so its name cannot be known here. The driver library comes with every NVIDIA driver under one name
/// (<c>libcuda.so.1</c> on Linux and WSL, <c>nvcuda.dll</c> on Windows), and its versioned entry points (the
/// <c>_v2</c> names that the CUDA headers map <c>cuMemGetInfo</c>, <c>cuCtxPushCurrent</c>... to) stay exported by
/// later drivers.</para>
/// <para>The sequence: <c>cuInit(0)</c>; <c>cuDeviceGet</c>; <c>cuDevicePrimaryCtxRetain</c>, the device's primary
/// context, which the runtime (and so libtorch) uses: when libtorch has started, no context is created and the
/// reading counts libtorch's allocations as used; <c>cuCtxPushCurrent_v2</c> (on this thread only);
/// <c>cuMemGetInfo_v2</c>; <c>cuCtxPopCurrent_v2</c>; <c>cuDevicePrimaryCtxRelease_v2</c>. Every result code is
/// checked: a missing library, a missing entry point (a driver older than CUDA 11) or an error code gives an
/// <see cref="GpuMemoryReading.Unknown"/> reading that names it, never an exception. The driver numbers devices after
/// <c>CUDA_VISIBLE_DEVICES</c> as the runtime does, so ordinal N is libtorch's <c>cuda:N</c>.</para>
/// <para>Calls are made through function pointers taken from the loaded library
/// (<see cref="NativeLibrary.TryGetExport"/>), so that a machine without the driver, or with an old one, loads this
/// type without error. <c>unmanaged</c> is the platform's default convention, which is <c>CUDAAPI</c>'s
/// (<c>__stdcall</c> on Windows, the same as cdecl on 64-bit).</para>
/// </remarks>
public sealed unsafe class CudaDriverMemory : IGpuMemoryProvider
{
    private const int Success = 0; // CUDA_SUCCESS
    private static readonly Lazy<CudaDriverMemory> SharedInstance = new(() => Load(DriverLibraryNames()));

    private readonly string _source;
    private readonly string? _loadProblem;
    private readonly Func<string, nint> _export;

    /// <param name="source">The library, as a reading names it.</param>
    /// <param name="export">An entry point's address, or 0 where the library lacks it.</param>
    /// <param name="loadProblem">Why the library could not be loaded (then nothing is read).</param>
    internal CudaDriverMemory(string source, Func<string, nint> export, string? loadProblem = null)
    {
        _source = source;
        _export = export;
        _loadProblem = loadProblem;
    }

    /// <summary>The reader over this machine's driver library, loaded on first use (and never unloaded: libtorch
    /// keeps it loaded anyway).</summary>
    public static CudaDriverMemory Shared => SharedInstance.Value;

    /// <summary>The driver library's names on this platform, tried in order (none on macOS: no NVIDIA
    /// driver).</summary>
    internal static IReadOnlyList<string> DriverLibraryNames() =>
        OperatingSystem.IsWindows() ? ["nvcuda.dll"]
        : OperatingSystem.IsLinux() ? ["libcuda.so.1", "libcuda.so"]
        : [];

    /// <summary>A reader over the first of <paramref name="names"/> that loads; one that reads nothing (saying so)
    /// when none does.</summary>
    internal static CudaDriverMemory Load(IReadOnlyList<string> names)
    {
        foreach (var name in names)
        {
            if (NativeLibrary.TryLoad(name, out var handle))
                return new CudaDriverMemory(
                    $"CUDA driver {name}, cuMemGetInfo_v2",
                    entry => NativeLibrary.TryGetExport(handle, entry, out var address) ? address : 0);
        }
        string tried = names.Count == 0 ? "no NVIDIA driver exists for this platform" : string.Join(", ", names);
        return new CudaDriverMemory(
            "CUDA driver", _ => 0,
            names.Count == 0 ? tried : $"the NVIDIA driver library could not be loaded (tried {tried})");
    }

    public GpuMemoryReading Read(int ordinal)
    {
        if (_loadProblem is not null) return GpuMemoryReading.Unknown(ordinal, _source, _loadProblem);
        if (!DriverCalls.TryResolve(_export, out var api, out var missing))
            return GpuMemoryReading.Unknown(ordinal, _source,
                $"the driver lacks {missing} (a driver older than CUDA 11 has no such entry point)");
        int status = api.Init(0);
        if (status != Success) return Failed(ordinal, api, "cuInit", status);
        int device;
        status = api.DeviceGet(&device, ordinal);
        if (status != Success) return Failed(ordinal, api, "cuDeviceGet", status);
        nint context;
        status = api.PrimaryCtxRetain(&context, device);
        if (status != Success) return Failed(ordinal, api, "cuDevicePrimaryCtxRetain", status);

        var reading = ReadInContext(ordinal, api, device, context);
        status = api.PrimaryCtxRelease(device);
        return status == Success || !reading.IsKnown
            ? reading : Failed(ordinal, api, "cuDevicePrimaryCtxRelease_v2", status);
    }

    /// <summary>The reading with <paramref name="context"/> current on this thread, which it leaves as it
    /// found it.</summary>
    private GpuMemoryReading ReadInContext(int ordinal, DriverCalls api, int device, nint context)
    {
        int status = api.CtxPushCurrent(context);
        if (status != Success) return Failed(ordinal, api, "cuCtxPushCurrent_v2", status);
        nuint free, total;
        int read = api.MemGetInfo(&free, &total);
        nint popped;
        status = api.CtxPopCurrent(&popped);
        if (read != Success) return Failed(ordinal, api, "cuMemGetInfo_v2", read);
        if (status != Success) return Failed(ordinal, api, "cuCtxPopCurrent_v2", status);
        return GpuMemoryReading.Known(ordinal, (long)free, (long)total, DeviceName(api, device), _source);
    }

    /// <summary>The device's name, or null (it only labels the reading).</summary>
    private static string? DeviceName(DriverCalls api, int device)
    {
        if (api.DeviceGetName is null) return null;
        const int capacity = 256;
        byte* name = stackalloc byte[capacity];
        return api.DeviceGetName(name, capacity, device) == Success
            ? Marshal.PtrToStringUTF8((nint)name)?.Trim() : null;
    }

    private GpuMemoryReading Failed(int ordinal, DriverCalls api, string call, int status)
    {
        byte* name = null;
        string code = api.GetErrorName is not null && api.GetErrorName(status, &name) == Success && name is not null
            ? $"{Marshal.PtrToStringUTF8((nint)name)} ({status})" : $"error {status}";
        return GpuMemoryReading.Unknown(ordinal, _source, $"{call} failed with {code}");
    }

    /// <summary>The driver entry points the reading calls (cuDeviceGetName and cuGetErrorName are optional: they only
    /// label the reading and its errors).</summary>
    private readonly struct DriverCalls
    {
        public delegate* unmanaged<uint, int> Init { get; init; }
        public delegate* unmanaged<int*, int, int> DeviceGet { get; init; }
        public delegate* unmanaged<nint*, int, int> PrimaryCtxRetain { get; init; }
        public delegate* unmanaged<nint, int> CtxPushCurrent { get; init; }
        public delegate* unmanaged<nuint*, nuint*, int> MemGetInfo { get; init; }
        public delegate* unmanaged<nint*, int> CtxPopCurrent { get; init; }
        public delegate* unmanaged<int, int> PrimaryCtxRelease { get; init; }
        public delegate* unmanaged<byte*, int, int, int> DeviceGetName { get; init; }
        public delegate* unmanaged<int, byte**, int> GetErrorName { get; init; }

        public static bool TryResolve(Func<string, nint> export, out DriverCalls calls, out string? missing)
        {
            string[] required =
            [
                "cuInit", "cuDeviceGet", "cuDevicePrimaryCtxRetain", "cuCtxPushCurrent_v2", "cuMemGetInfo_v2",
                "cuCtxPopCurrent_v2", "cuDevicePrimaryCtxRelease_v2",
            ];
            var addresses = required.Select(export).ToArray();
            int absent = Array.IndexOf(addresses, (nint)0);
            missing = absent >= 0 ? required[absent] : null;
            calls = absent >= 0 ? default : new DriverCalls
            {
                Init = (delegate* unmanaged<uint, int>)addresses[0],
                DeviceGet = (delegate* unmanaged<int*, int, int>)addresses[1],
                PrimaryCtxRetain = (delegate* unmanaged<nint*, int, int>)addresses[2],
                CtxPushCurrent = (delegate* unmanaged<nint, int>)addresses[3],
                MemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)addresses[4],
                CtxPopCurrent = (delegate* unmanaged<nint*, int>)addresses[5],
                PrimaryCtxRelease = (delegate* unmanaged<int, int>)addresses[6],
                DeviceGetName = (delegate* unmanaged<byte*, int, int, int>)export("cuDeviceGetName"),
                GetErrorName = (delegate* unmanaged<int, byte**, int>)export("cuGetErrorName"),
            };
            return absent < 0;
        }
    }
}
