namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>The shape of an ldm <c>AutoencoderKL</c> (encoder/decoder with <c>ch × ch_mult</c> levels).</summary>
/// <param name="LayersPerBlock">ResNet blocks per encoder level (<c>num_res_blocks</c>); decoder levels
/// have one more.</param>
/// <param name="LatentChannels"><c>z_channels</c> = <c>embed_dim</c> (diffusers needs them equal).</param>
public sealed record LdmVaeArchitecture(
    int InChannels,
    int OutChannels,
    IReadOnlyList<int> BlockOutChannels,
    int LayersPerBlock,
    int LatentChannels)
{
    public int Levels => BlockOutChannels.Count;

    /// <summary>Spatial downscaling between image and latents: 2^(levels-1).</summary>
    public int DownscaleFactor => 1 << (BlockOutChannels.Count - 1);
}
