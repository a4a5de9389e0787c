using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>What the hybrid ViT hands the neck, plus the intermediates a test may want to see.</summary>
/// <param name="NeckInputs">BiT stages 1 and 2 ([B, C, H/4, W/4], [B, C, H/8, W/8]), then the chosen ViT layers'
/// outputs ([B, 1 + grid², D] each, before the final LayerNorm), in that order.</param>
/// <param name="Embeddings">The hybrid embeddings (tokens, stem, stages).</param>
/// <param name="LayerOutputs">Every ViT layer output kept (all of them when asked, else those in
/// <paramref name="NeckInputs"/>).</param>
public sealed record DPTModelOutput(
    IReadOnlyList<Tensor> NeckInputs, DPTHybridEmbeddingOutput Embeddings,
    IReadOnlyDictionary<int, Tensor> LayerOutputs);
