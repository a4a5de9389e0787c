namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>One DPT module tensor and where it comes from in a single-file checkpoint's MiDaS weights.</summary>
/// <param name="SourceKey">The checkpoint key, e.g.
/// <c>depth_model.model.pretrained.model.blocks.0.attn.qkv.weight</c>.</param>
/// <param name="ModuleKey">The transformers key, e.g.
/// <c>dpt.encoder.layer.0.attention.attention.query.weight</c>.</param>
/// <param name="ModuleShape">The module tensor's shape.</param>
/// <param name="Chunk">Which of <paramref name="Chunks"/> equal row blocks of the source (q, k, v of timm's fused
/// <c>qkv</c>).</param>
/// <param name="Chunks">1 for a plain copy, 3 for q/k/v.</param>
public sealed record DptKeyMapping(
    string SourceKey, string ModuleKey, long[] ModuleShape, int Chunk = 0, int Chunks = 1)
{
    /// <summary>The checkpoint tensor's shape: the module's, with <paramref name="Chunks"/> times the rows.</summary>
    public long[] SourceShape =>
        Chunks == 1 ? ModuleShape : ModuleShape.Select((d, i) => i == 0 ? d * Chunks : d).ToArray();
}
