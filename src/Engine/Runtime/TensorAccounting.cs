using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// How many tensors are really alive, for leak tests and the soak benchmark. TorchSharp counts every managed tensor in
/// <c>torch.Tensor.TotalCount</c> and uncounts it when a disposal frees its native handle. But <c>new Parameter(t)</c>
/// (which every TorchSharp layer calls once per weight it creates, and the loader once per weight it replaces) moves
/// the handle out of <c>t</c> without uncounting it (TorchSharp 0.107: <c>MoveHandle</c>, unlike
/// <c>DecoupleFromNativeHandle</c>), so each parameter ever made leaves one emptied wrapper counted for good although
/// nothing native stays behind. A load → <c>Clear-SDEngine</c> cycle of a model with P parameters therefore raised
/// TotalCount by up to 2P without leaking anything. The engine records each emptied wrapper it causes, so that
/// <see cref="LiveTensors"/> counts only tensors that still hold native memory.
/// </summary>
public static class TensorAccounting
{
    private static long _emptiedWrappers;

    /// <summary>Wrappers emptied by <c>new Parameter(tensor)</c> in the engine's modules and loader.</summary>
    public static long EmptiedWrappers => Interlocked.Read(ref _emptiedWrappers);

    /// <summary>Managed tensors that still own a native tensor: TorchSharp's TotalCount less the
    /// emptied wrappers.</summary>
    public static long LiveTensors => torch.Tensor.TotalCount - EmptiedWrappers;

    /// <summary>Records the wrappers emptied while <paramref name="module"/> was built: one per parameter.</summary>
    internal static void RecordBuilt(torch.nn.Module module) =>
        Interlocked.Add(ref _emptiedWrappers, module.parameters().LongCount());

    /// <summary>Records one wrapper emptied by a <c>new Parameter(tensor)</c> outside a module's
    /// construction.</summary>
    internal static void RecordParameterMade() => Interlocked.Increment(ref _emptiedWrappers);
}
