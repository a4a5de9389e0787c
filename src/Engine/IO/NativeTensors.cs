using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.IO;

/// <summary>
/// The two LibTorchSharp entry points TorchSharp 0.107 keeps internal: wrapping foreign memory in a tensor
/// (<c>torch::from_blob</c>) and a tensor's raw data pointer. They let weights go from the file mapping to their
/// final storage without a managed copy. Signatures match LibTorchSharp as shipped with TorchSharp 0.107.
/// </summary>
internal static unsafe class NativeTensors
{
    /// <summary>
    /// The exports, looked up in the very library TorchSharp itself loaded (resolved through TorchSharp's assembly,
    /// so whatever resolver or preload makes TorchSharp work makes this work too).
    /// </summary>
    private static readonly Lazy<(IntPtr NewTensor, IntPtr Data)> Exports = new(() =>
    {
        torch.InitializeDeviceType(DeviceType.CPU);
        var library = NativeLibrary.Load("LibTorchSharp", typeof(torch).Assembly, null);
        return (NativeLibrary.GetExport(library, "THSTensor_new"), NativeLibrary.GetExport(library, "THSTensor_data"));
    });

    // Tensor THSTensor_new(void* data, void (*deleter)(void*), const int64_t* sizes, int szlength,
    //                      int8_t scalar_type, int8_t dtype, int device_type, int device_index, bool requires_grad)
    private static IntPtr THSTensor_new(void* data, delegate* unmanaged[Cdecl]<void*, void> deleter, long* sizes,
        int sizeCount, sbyte sourceType, sbyte targetType, int deviceType, int deviceIndex, bool requiresGrad) =>
        ((delegate* unmanaged[Cdecl]<void*, delegate* unmanaged[Cdecl]<void*, void>, long*, int, sbyte, sbyte, int, int,
                byte, IntPtr>)
            Exports.Value.NewTensor)(
                data, deleter, sizes, sizeCount, sourceType, targetType, deviceType, deviceIndex,
                requiresGrad ? (byte)1 : (byte)0);

    // void* THSTensor_data(const Tensor tensor)
    private static IntPtr THSTensor_data(IntPtr handle) =>
        ((delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Exports.Value.Data)(handle);

    // The mapping outlives every blob tensor (they are disposed before Read returns), so there is nothing to free.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void KeepMemory(void* data) { }

    /// <summary>A CPU tensor viewing <paramref name="data"/> (no copy); the caller keeps the memory alive and
    /// unchanged.</summary>
    public static Tensor FromBlob(byte* data, long[] shape, ScalarType type) =>
        FromBlob(data, shape, type, &KeepMemory);

    /// <summary>
    /// A CPU tensor viewing <paramref name="data"/> (no copy); libtorch calls <paramref name="deleter"/> with
    /// <paramref name="data"/> when the tensor's storage is freed (not when this call fails).
    /// </summary>
    public static Tensor FromBlob(
        byte* data, long[] shape, ScalarType type, delegate* unmanaged[Cdecl]<void*, void> deleter)
    {
        IntPtr handle;
        fixed (long* sizes = shape.Length == 0 ? [0L] : shape)
        {
            handle = THSTensor_new(data, deleter, sizes, shape.Length, (sbyte)type, (sbyte)type, 0, 0, false);
        }
        if (handle == IntPtr.Zero)
        {
            torch.CheckForErrors();
            throw new InvalidOperationException("LibTorchSharp could not wrap mapped memory in a tensor");
        }
        return Tensor.UnsafeCreateTensor(handle);
    }

    /// <summary>Pointer to the first element of a contiguous CPU tensor.</summary>
    public static byte* DataPointer(Tensor tensor)
    {
        if (tensor.device_type != DeviceType.CPU || !tensor.is_contiguous())
            throw new ArgumentException("expected a contiguous CPU tensor", nameof(tensor));
        if (tensor.NumberOfElements == 0) return null;
        var pointer = THSTensor_data(tensor.Handle);
        if (pointer == IntPtr.Zero) torch.CheckForErrors();
        return (byte*)pointer;
    }
}
