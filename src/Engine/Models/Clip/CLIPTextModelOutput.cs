using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>What the CLIP text tower returns (transformers' <c>BaseModelOutputWithPooling</c>).</summary>
public sealed class CLIPTextModelOutput : IDisposable
{
    public CLIPTextModelOutput(Tensor lastHiddenState, Tensor pooledOutput, IReadOnlyList<Tensor>? hiddenStates)
    {
        LastHiddenState = lastHiddenState;
        PooledOutput = pooledOutput;
        HiddenStates = hiddenStates;
    }

    /// <summary>[B, T, D]: output of the last layer after <c>final_layer_norm</c>; Stable Diffusion's prompt
    /// embeddings.</summary>
    public Tensor LastHiddenState { get; }

    /// <summary>[B, D]: <see cref="LastHiddenState"/> at each sequence's end-of-text token.</summary>
    public Tensor PooledOutput { get; }

    /// <summary>
    /// When requested: the embeddings, then the output of each layer before the final layer norm
    /// (num_hidden_layers + 1 tensors of [B, T, D]); otherwise null.
    /// </summary>
    public IReadOnlyList<Tensor>? HiddenStates { get; }

    /// <summary>Moves every tensor to the dispose scope that encloses the current one.</summary>
    public CLIPTextModelOutput MoveToOuterDisposeScope()
    {
        LastHiddenState.MoveToOuterDisposeScope();
        PooledOutput.MoveToOuterDisposeScope();
        if (HiddenStates is not null)
            foreach (var h in HiddenStates) h.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        LastHiddenState.Dispose();
        PooledOutput.Dispose();
        if (HiddenStates is not null)
            foreach (var h in HiddenStates) h.Dispose();
    }
}
