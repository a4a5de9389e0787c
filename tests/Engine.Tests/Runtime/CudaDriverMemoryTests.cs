using System.Runtime.InteropServices;
using PSStableDiffusion.Engine.Runtime;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Runtime;

/// <summary>
/// The CUDA driver reader (issue 12, part 4). No GPU or NVIDIA driver is here, so the reader is handed fake driver
/// entry points: real unmanaged function pointers ([UnmanagedCallersOnly]) that record the calls and return what a test
/// sets, so the calling convention, the out parameters and the order of the calls are exercised as with the driver.
/// What the real driver returns is checked by bench/DeviceCheck on a GPU machine.
/// </summary>
/// <remarks>One class: the fake driver's state is static (an unmanaged entry point cannot capture), so its tests run
/// one at a time.</remarks>
public sealed unsafe class CudaDriverMemoryTests
{
    private const long GiB = 1L << 30;
    private const int FakeDevice = 7;       // the CUdevice handle the fake hands out (not the ordinal)
    private const nint FakeContext = 0x5150; // the primary context it hands out
    private static readonly nint InvalidContextName = Marshal.StringToCoTaskMemUTF8("CUDA_ERROR_INVALID_CONTEXT");
    private static readonly nint DeviceNameText = Marshal.StringToCoTaskMemUTF8("Fake GPU 4GB");

    private static readonly List<string> Calls = [];
    private static readonly Dictionary<string, int> Results = [];
    private static ulong _free, _total;

    [Fact]
    public void TheSequenceRunsInOrder_OnTheDevicesPrimaryContext_AndReadsFreeAndTotal()
    {
        Reset(free: 3 * GiB, total: 4 * GiB);
        var reading = FakeDriver().Read(2);

        Assert.True(reading.IsKnown, reading.Problem);
        Assert.Equal((3 * GiB, 4 * GiB), (reading.FreeBytes!.Value, reading.TotalBytes!.Value));
        Assert.Equal("Fake GPU 4GB", reading.Name);
        Assert.Equal(2, reading.Ordinal);
        Assert.Equal(
            [
                "cuInit 0", "cuDeviceGet 2", $"cuDevicePrimaryCtxRetain {FakeDevice}", $"cuCtxPushCurrent_v2 {FakeContext}",
                "cuMemGetInfo_v2", "cuCtxPopCurrent_v2", $"cuDeviceGetName {FakeDevice}",
                $"cuDevicePrimaryCtxRelease_v2 {FakeDevice}",
            ],
            Calls);
    }

    [Fact]
    public void AFailedReading_IsUnknownNamingTheCallAndCode_AndStillPopsAndReleasesTheContext()
    {
        Reset(free: 3 * GiB, total: 4 * GiB);
        Results["cuMemGetInfo_v2"] = 201;
        var reading = FakeDriver().Read(0);

        Assert.False(reading.IsKnown);
        Assert.Equal("cuMemGetInfo_v2 failed with CUDA_ERROR_INVALID_CONTEXT (201)", reading.Problem);
        Assert.Contains("cuCtxPopCurrent_v2", Calls);
        Assert.Equal($"cuDevicePrimaryCtxRelease_v2 {FakeDevice}", Calls[^1]);
    }

    [Theory]
    [InlineData("cuInit", 100)]                    // CUDA_ERROR_NO_DEVICE
    [InlineData("cuDeviceGet", 101)]               // CUDA_ERROR_INVALID_DEVICE: no such ordinal
    [InlineData("cuDevicePrimaryCtxRetain", 999)]  // e.g. a device in a prohibited compute mode
    public void AnEarlyFailure_StopsThere_WithNothingLeftRetained(string call, int code)
    {
        Reset(free: 1, total: 2);
        Results[call] = code;
        var reading = FakeDriver().Read(0);

        Assert.False(reading.IsKnown);
        Assert.Equal($"{call} failed with error {code}", reading.Problem); // the fake names no code but 201
        Assert.StartsWith(call, Calls[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(Calls, c => c.StartsWith("cuDevicePrimaryCtxRelease_v2", StringComparison.Ordinal));
    }

    [Fact]
    public void APushThatFails_ReleasesTheRetainedContext_WithoutPopping()
    {
        Reset(free: 1, total: 2);
        Results["cuCtxPushCurrent_v2"] = 201;
        var reading = FakeDriver().Read(0);

        Assert.Equal("cuCtxPushCurrent_v2 failed with CUDA_ERROR_INVALID_CONTEXT (201)", reading.Problem);
        Assert.DoesNotContain("cuCtxPopCurrent_v2", Calls);
        Assert.Equal($"cuDevicePrimaryCtxRelease_v2 {FakeDevice}", Calls[^1]);
    }

    [Fact]
    public void AFailedReleaseOrPop_MakesTheReadingUnknown()
    {
        Reset(free: 1, total: 2);
        Results["cuDevicePrimaryCtxRelease_v2"] = 201;
        Assert.Equal("cuDevicePrimaryCtxRelease_v2 failed with CUDA_ERROR_INVALID_CONTEXT (201)", FakeDriver().Read(0).Problem);
        Reset(free: 1, total: 2);
        Results["cuCtxPopCurrent_v2"] = 201;
        Assert.Equal("cuCtxPopCurrent_v2 failed with CUDA_ERROR_INVALID_CONTEXT (201)", FakeDriver().Read(0).Problem);
    }

    [Fact]
    public void ADriverWithoutAnEntryPoint_IsUnknownNamingIt_AndCallsNothing()
    {
        Reset(free: 1, total: 2);
        var exports = Exports();
        exports.Remove("cuDevicePrimaryCtxRelease_v2"); // a driver older than CUDA 11
        var reading = new CudaDriverMemory("fake driver", name => exports.GetValueOrDefault(name)).Read(0);

        Assert.False(reading.IsKnown);
        Assert.Contains("cuDevicePrimaryCtxRelease_v2", reading.Problem);
        Assert.Empty(Calls);
    }

    [Fact]
    public void AMissingLibrary_IsUnknownNamingWhatWasTried_NeverAnException()
    {
        var reading = CudaDriverMemory.Load(["libno-such-cuda-driver.so.1", "no-such-nvcuda.dll"]).Read(0);
        Assert.False(reading.IsKnown);
        Assert.Contains("libno-such-cuda-driver.so.1, no-such-nvcuda.dll", reading.Problem);
        Assert.Contains("no NVIDIA driver", CudaDriverMemory.Load([]).Read(0).Problem);
    }

    /// <summary>This machine's own driver (none on CI): a reading or a reason, never an exception.</summary>
    [Fact]
    public void ThisMachinesDriver_GivesAReadingOrAReason()
    {
        var names = CudaDriverMemory.DriverLibraryNames();
        Assert.Equal(OperatingSystem.IsWindows() ? ["nvcuda.dll"] : OperatingSystem.IsLinux() ? ["libcuda.so.1", "libcuda.so"] : [], names);
        var reading = CudaDriverMemory.Shared.Read(0);
        if (reading.IsKnown) Assert.InRange(reading.FreeBytes!.Value, 0, reading.TotalBytes!.Value);
        else Assert.False(string.IsNullOrEmpty(reading.Problem));
    }

    private static CudaDriverMemory FakeDriver()
    {
        var exports = Exports();
        return new CudaDriverMemory("fake driver", name => exports.GetValueOrDefault(name));
    }

    private static void Reset(long free, long total)
    {
        Calls.Clear();
        Results.Clear();
        (_free, _total) = ((ulong)free, (ulong)total);
    }

    private static Dictionary<string, nint> Exports() => new()
    {
        ["cuInit"] = (nint)(delegate* unmanaged<uint, int>)&Init,
        ["cuDeviceGet"] = (nint)(delegate* unmanaged<int*, int, int>)&DeviceGet,
        ["cuDevicePrimaryCtxRetain"] = (nint)(delegate* unmanaged<nint*, int, int>)&PrimaryCtxRetain,
        ["cuCtxPushCurrent_v2"] = (nint)(delegate* unmanaged<nint, int>)&CtxPushCurrent,
        ["cuMemGetInfo_v2"] = (nint)(delegate* unmanaged<nuint*, nuint*, int>)&MemGetInfo,
        ["cuCtxPopCurrent_v2"] = (nint)(delegate* unmanaged<nint*, int>)&CtxPopCurrent,
        ["cuDevicePrimaryCtxRelease_v2"] = (nint)(delegate* unmanaged<int, int>)&PrimaryCtxRelease,
        ["cuDeviceGetName"] = (nint)(delegate* unmanaged<byte*, int, int, int>)&DeviceGetName,
        ["cuGetErrorName"] = (nint)(delegate* unmanaged<int, byte**, int>)&GetErrorName,
    };

    private static int Called(string call, string? argument = null)
    {
        Calls.Add(argument is null ? call : $"{call} {argument}");
        return Results.GetValueOrDefault(call);
    }

    [UnmanagedCallersOnly]
    private static int Init(uint flags) => Called("cuInit", flags.ToString());

    [UnmanagedCallersOnly]
    private static int DeviceGet(int* device, int ordinal)
    {
        *device = FakeDevice;
        return Called("cuDeviceGet", ordinal.ToString());
    }

    [UnmanagedCallersOnly]
    private static int PrimaryCtxRetain(nint* context, int device)
    {
        *context = FakeContext;
        return Called("cuDevicePrimaryCtxRetain", device.ToString());
    }

    [UnmanagedCallersOnly]
    private static int CtxPushCurrent(nint context) => Called("cuCtxPushCurrent_v2", context.ToString());

    [UnmanagedCallersOnly]
    private static int MemGetInfo(nuint* free, nuint* total)
    {
        (*free, *total) = ((nuint)_free, (nuint)_total);
        return Called("cuMemGetInfo_v2");
    }

    [UnmanagedCallersOnly]
    private static int CtxPopCurrent(nint* context)
    {
        *context = FakeContext;
        return Called("cuCtxPopCurrent_v2");
    }

    [UnmanagedCallersOnly]
    private static int PrimaryCtxRelease(int device) => Called("cuDevicePrimaryCtxRelease_v2", device.ToString());

    [UnmanagedCallersOnly]
    private static int DeviceGetName(byte* name, int capacity, int device)
    {
        var text = new ReadOnlySpan<byte>((byte*)DeviceNameText, "Fake GPU 4GB".Length + 1);
        text[..Math.Min(text.Length, capacity)].CopyTo(new Span<byte>(name, capacity));
        return Called("cuDeviceGetName", device.ToString());
    }

    [UnmanagedCallersOnly]
    private static int GetErrorName(int code, byte** name)
    {
        if (code != 201) return 1; // CUDA_ERROR_INVALID_VALUE: the fake names one code only
        *name = (byte*)InvalidContextName;
        return 0;
    }
}
