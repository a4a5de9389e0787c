using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>Tells libtorch's failures apart where TorchSharp gives them all one exception type.</summary>
public static class TorchErrors
{
    // libtorch's own wording: c10's CUDACachingAllocator ("CUDA out of memory. Tried to allocate 2.00 GiB ...") and
    // DefaultCPUAllocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes").
    private static readonly string[] OutOfMemoryMessages =
        { "CUDA out of memory", "can't allocate memory", "out of memory" };

    /// <summary>
    /// Whether <paramref name="exception"/> (or an inner one) is an allocation that failed for lack of memory: a CUDA
    /// or CPU libtorch allocator error, which TorchSharp raises as <see cref="ExternalException"/>, or .NET's own
    /// <see cref="OutOfMemoryException"/>. The caching allocator frees the failed call's blocks when its tensors are
    /// disposed, so the engine can go on with a smaller request.
    /// </summary>
    public static bool IsOutOfMemory(Exception exception)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is OutOfMemoryException) return true;
            if (current is ExternalException
                && OutOfMemoryMessages.Any(text => current.Message.Contains(text, StringComparison.OrdinalIgnoreCase)))
                return true;
        }
        return false;
    }

    /// <summary>
    /// The message of <paramref name="exception"/> (or of the inner libtorch error that makes it an out-of-memory one)
    /// without the C++ stack frames libtorch appends (<c>frame #0: ...</c>, <c>Exception raised from ...</c>), which
    /// mean nothing to a user: the first lines, as libtorch words them.
    /// </summary>
    public static string Summary(Exception exception)
    {
        var source = exception;
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current is ExternalException) { source = current; break; }
        }
        var message = source.Message;
        foreach (var marker in StackMarkers)
        {
            int at = message.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0) message = message[..at];
        }
        return message.Trim();
    }

    // c10::Error's what() appends "\nException raised from <function> at <file> (most recent call first):" and the
    // frames; an enforce failure ("[enforce fail at ...]") appends the frames alone.
    private static readonly string[] StackMarkers = { "\nException raised from ", "\nframe #" };
}
