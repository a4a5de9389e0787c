using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>What the neck made, each step kept so that a test can compare it.</summary>
/// <param name="Reassembled">The reassembled maps (the first two are the BiT maps themselves).</param>
/// <param name="Projected">After <c>convs</c>: [B, F, h_i, w_i].</param>
/// <param name="Fused">The fusion outputs, coarsest first.</param>
public sealed record DPTNeckOutput(
    IReadOnlyList<Tensor> Reassembled, IReadOnlyList<Tensor> Projected, IReadOnlyList<Tensor> Fused);
