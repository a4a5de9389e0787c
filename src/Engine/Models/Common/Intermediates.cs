using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>Frees a forward's intermediate activations as soon as the next one exists, instead of at
/// scope end.</summary>
internal static class Intermediates
{
    /// <summary>Returns <paramref name="next"/> after disposing <paramref name="current"/>, unless
    /// <paramref name="current"/> is <paramref name="callerOwned"/> (the forward's input, which the
    /// caller still holds) or is
    /// <paramref name="next"/> itself.</summary>
    public static Tensor Replace(Tensor current, Tensor next, Tensor callerOwned)
    {
        if (!ReferenceEquals(current, callerOwned) && !ReferenceEquals(current, next)) current.Dispose();
        return next;
    }
}
