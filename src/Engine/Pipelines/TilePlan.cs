using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>A tiling of a latent: tile edge and overlap in latent pixels.</summary>
public sealed record TilePlan(int TileSize, int Overlap)
{
    /// <summary>Tile start offsets along an axis of <paramref name="size"/>: tiles of <see cref="TileSize"/> (or the
    /// whole axis when shorter) that share at least <see cref="Overlap"/>, spread evenly so the last one ends
    /// at the edge.</summary>
    public int[] Starts(int size)
    {
        if (size <= TileSize) return [0];
        int stride = TileSize - Overlap;
        int count = (int)Math.Ceiling((double)(size - TileSize) / stride) + 1;
        return Enumerable.Range(0, count)
            .Select(i => (int)Math.Round((double)i * (size - TileSize) / (count - 1)))
            .ToArray();
    }

    public int Count(int height, int width) => Starts(height).Length * Starts(width).Length;
}
