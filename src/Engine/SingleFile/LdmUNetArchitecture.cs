namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// The shape of an ldm <c>openaimodel.UNetModel</c> as SD 2.x uses it, in diffusers' terms (one entry per resolution
/// level). Everything here can be read from the weights; the head layout cannot, and lives in the config JSON instead.
/// </summary>
/// <param name="InChannels">Input channels of <c>input_blocks.0.0</c> (4, 5, 7 or 9).</param>
/// <param name="OutChannels">Output channels of <c>out.2</c>.</param>
/// <param name="BlockOutChannels">Width of each level (<c>model_channels × channel_mult</c>).</param>
/// <param name="LayersPerBlock">ResNet blocks per down level (<c>num_res_blocks</c>); up levels have one more.</param>
/// <param name="LevelHasAttention">Per level: a SpatialTransformer follows each ResNet.</param>
/// <param name="OnlyCrossAttention">Per level: the transformer's first attention also attends to the text (the x4
/// upscaler's <c>disable_self_attentions</c>).</param>
/// <param name="TransformerDepth">Transformer blocks per SpatialTransformer.</param>
/// <param name="CrossAttentionDim">Width of the text embeddings (<c>context_dim</c>).</param>
/// <param name="UseLinearProjection">proj_in/proj_out are Linear (SD 2.x) rather than 1×1 convolutions.</param>
/// <param name="NumClassEmbeds">Size of the class-label table (<c>label_emb</c>), null when absent.</param>
public sealed record LdmUNetArchitecture(
    int InChannels,
    int OutChannels,
    IReadOnlyList<int> BlockOutChannels,
    int LayersPerBlock,
    IReadOnlyList<bool> LevelHasAttention,
    IReadOnlyList<bool> OnlyCrossAttention,
    int TransformerDepth,
    int CrossAttentionDim,
    bool UseLinearProjection,
    int? NumClassEmbeds)
{
    /// <summary>Width of the timestep embedding: 4 × the first level's width in both ldm and diffusers.</summary>
    public int TimeEmbedDim => 4 * BlockOutChannels[0];

    public int Levels => BlockOutChannels.Count;
}
