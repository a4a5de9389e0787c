using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// Runs a spatial model over overlapping tiles and blends the results, so memory follows the tile size, not the image
/// size. Each tile's output is weighted by a separable window that is 1 inside and ramps linearly to near 0 across
/// the overlap on sides shared with another tile; the weighted sum is divided by the summed weights, which hides
/// seams (MultiDiffusion-style averaging).
/// </summary>
public static class TiledInference
{
    /// <param name="input">[B, C, h, w]</param>
    /// <param name="plan">Tile size and overlap in <paramref name="input"/> pixels.</param>
    /// <param name="scale">Output pixels per input pixel (1 for the UNet, the VAE factor for the decoder).</param>
    /// <param name="run">The model: [B, C, th, tw] → [B, C', th·scale, tw·scale].</param>
    /// <returns>[B, C', h·scale, w·scale] in the dtype of the first tile's output.</returns>
    public static Tensor Run(Tensor input, TilePlan plan, int scale, Func<Tensor, Tensor> run)
    {
        using var scope = torch.NewDisposeScope();
        int height = (int)input.shape[2], width = (int)input.shape[3];
        int tileHeight = Math.Min(plan.TileSize, height), tileWidth = Math.Min(plan.TileSize, width);
        Tensor? sum = null, weightSum = null;
        foreach (var top in plan.Starts(height))
        {
            foreach (var left in plan.Starts(width))
            {
                using var tileScope = torch.NewDisposeScope();
                // [B, C, th, tw]
                var tile = input[.., .., top..(top + tileHeight), left..(left + tileWidth)];
                // [B, C', th·s, tw·s]
                var output = run(tile);
                if (sum is null)
                {
                    sum = torch.zeros(
                        new[] { input.shape[0], output.shape[1], (long)height * scale, (long)width * scale },
                        // [B, C', H, W]
                        output.dtype, output.device).MoveToOuterDisposeScope();
                    weightSum = torch.zeros(new long[] { 1, 1, (long)height * scale, (long)width * scale },
                        // [1, 1, H, W]
                        output.dtype, output.device).MoveToOuterDisposeScope();
                }
                var rows = Ramp(top * scale, tileHeight * scale, height * scale, plan.Overlap * scale);
                var columns = Ramp(left * scale, tileWidth * scale, width * scale, plan.Overlap * scale);
                var window = torch.tensor(rows, output.dtype, output.device).reshape(1, 1, -1, 1)
                    // [1, 1, th·s, tw·s]
                    * torch.tensor(columns, output.dtype, output.device).reshape(1, 1, 1, -1);
                ((ScalarSafeTensor)sum.narrow(2, top * scale, tileHeight * scale)
                    .narrow(3, left * scale, tileWidth * scale)).AddInPlace(output * window);
                ((ScalarSafeTensor)weightSum!.narrow(2, top * scale, tileHeight * scale)
                    .narrow(3, left * scale, tileWidth * scale)).AddInPlace(window);
            }
        }
        return (sum! / weightSum!).MoveToOuterDisposeScope();
    }

    /// <summary>1 inside; (i + 1) / (overlap + 1) over the first/last <paramref name="overlap"/> pixels on a side that
    /// another tile shares (never 0, so every pixel keeps a weight).</summary>
    internal static float[] Ramp(int start, int length, int size, int overlap)
    {
        var weights = Enumerable.Repeat(1f, length).ToArray();
        int ramp = Math.Min(overlap, length);
        for (int i = 0; i < ramp; i++)
        {
            float value = (i + 1f) / (overlap + 1f);
            if (start > 0) weights[i] = Math.Min(weights[i], value);
            if (start + length < size) weights[length - 1 - i] = Math.Min(weights[length - 1 - i], value);
        }
        return weights;
    }
}
