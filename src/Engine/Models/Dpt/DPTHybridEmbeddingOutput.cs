using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>What the hybrid embeddings produce: the ViT's input tokens and the BiT maps the neck
/// takes directly.</summary>
/// <param name="Tokens">[B, 1 + grid², hidden]: CLS token, then the projected BiT stage-3 map, plus
/// position embeddings</param>
/// <param name="Stem">[B, E, H/4, W/4], the BiT stem output</param>
/// <param name="Stages">BiT stage outputs 1..3: [B, C_i, H/4, W/4], [B, C_i, H/8, W/8], [B, C_i, H/16, W/16]</param>
public sealed record DPTHybridEmbeddingOutput(Tensor Tokens, Tensor Stem, IReadOnlyList<Tensor> Stages);
