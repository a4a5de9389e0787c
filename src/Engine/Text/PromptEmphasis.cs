using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// AUTOMATIC1111's "Original" emphasis (modules/sd_emphasis.py): each token's output vector is multiplied by its
/// weight, then the whole chunk is rescaled so that its mean equals the mean it had before weighting.
/// </summary>
public static class PromptEmphasis
{
    /// <summary>The weighted chunk, [1, 77, D] in <paramref name="z"/>'s dtype; <paramref name="z"/> itself when
    /// every weight is 1 (then A1111's arithmetic is the identity too, bit for bit).</summary>
    /// <param name="z">[1, T, D] text-encoder output of one chunk.</param>
    /// <param name="weights">T weights.</param>
    public static Tensor ApplyOriginal(Tensor z, float[] weights)
    {
        if (weights.Length != z.shape[1])
            throw new ArgumentException(
                $"{weights.Length} weights for a chunk of {z.shape[1]} tokens.", nameof(weights));
        if (weights.All(w => w == 1f)) return z;
        using var scope = NewDisposeScope();
        // A1111 multiplies by a float32 tensor, so a half-precision z is weighted and rescaled in float32.
        var z32 = z.to(ScalarType.Float32);
        var before = z32.mean();                                                            // []
        var w = tensor(weights, new long[] { 1, weights.Length, 1 }, ScalarType.Float32, z.device); // [1, T, 1]
        var weighted = z32 * w;                                                             // [1, T, D]
        var after = weighted.mean();                                                        // []
        return (weighted * (before / after)).to(z.dtype).MoveToOuterDisposeScope();         // [1, T, D]
    }
}
