namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>The three networks of a Stable Diffusion checkpoint.</summary>
public enum SingleFileComponent
{
    /// <summary><c>model.diffusion_model.*</c> → diffusers <c>unet/</c>.</summary>
    UNet,
    /// <summary><c>first_stage_model.*</c> → diffusers <c>vae/</c>.</summary>
    Vae,
    /// <summary><c>cond_stage_model.model.*</c> (OpenCLIP) → transformers <c>text_encoder/</c>.</summary>
    TextEncoder,
}

/// <summary>
/// The shape of an ldm <c>openaimodel.UNetModel</c> as SD 2.x uses it, in diffusers' terms (one entry per resolution
/// level). Everything here can be read from the weights; the head layout cannot, and lives in the config JSON instead.
/// </summary>
/// <param name="InChannels">Input channels of <c>input_blocks.0.0</c> (4, 5, 7 or 9).</param>
/// <param name="OutChannels">Output channels of <c>out.2</c>.</param>
/// <param name="BlockOutChannels">Width of each level (<c>model_channels × channel_mult</c>).</param>
/// <param name="LayersPerBlock">ResNet blocks per down level (<c>num_res_blocks</c>); up levels have one more.</param>
/// <param name="LevelHasAttention">Per level: a SpatialTransformer follows each ResNet.</param>
/// <param name="OnlyCrossAttention">Per level: the transformer's first attention also attends to the text (the x4 upscaler's <c>disable_self_attentions</c>).</param>
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

/// <summary>The shape of an ldm <c>AutoencoderKL</c> (encoder/decoder with <c>ch × ch_mult</c> levels).</summary>
/// <param name="LayersPerBlock">ResNet blocks per encoder level (<c>num_res_blocks</c>); decoder levels have one more.</param>
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

/// <summary>The shape of the OpenCLIP text tower inside an SD 2.x checkpoint.</summary>
/// <param name="Width">Embedding width (1024 for ViT-H/14).</param>
/// <param name="Layers">Residual blocks the pipeline runs (23 = penultimate of 24 for SD 2.x).</param>
/// <param name="CheckpointLayers">Residual blocks stored in the checkpoint (24); the ones past <paramref name="Layers"/> are ignored.</param>
/// <param name="MlpWidth">Hidden width of each block's MLP.</param>
/// <param name="VocabSize">Rows of <c>token_embedding</c>.</param>
/// <param name="ContextLength">Rows of <c>positional_embedding</c> (77).</param>
public sealed record LdmTextArchitecture(int Width, int Layers, int CheckpointLayers, int MlpWidth, int VocabSize, int ContextLength);

/// <summary>What a single-file checkpoint holds; a component is null when the file does not carry it.</summary>
public sealed record LdmArchitecture(LdmUNetArchitecture? UNet, LdmVaeArchitecture? Vae, LdmTextArchitecture? Text);
