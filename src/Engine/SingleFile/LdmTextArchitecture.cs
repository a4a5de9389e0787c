namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>The shape of the OpenCLIP text tower inside an SD 2.x checkpoint.</summary>
/// <param name="Width">Embedding width (1024 for ViT-H/14).</param>
/// <param name="Layers">Residual blocks the pipeline runs (23 = penultimate of 24 for SD 2.x).</param>
/// <param name="CheckpointLayers">Residual blocks stored in the checkpoint (24); the ones past
/// <paramref name="Layers"/> are ignored.</param>
/// <param name="MlpWidth">Hidden width of each block's MLP.</param>
/// <param name="VocabSize">Rows of <c>token_embedding</c>.</param>
/// <param name="ContextLength">Rows of <c>positional_embedding</c> (77).</param>
public sealed record LdmTextArchitecture(
    int Width, int Layers, int CheckpointLayers, int MlpWidth, int VocabSize, int ContextLength);
