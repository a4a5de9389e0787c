using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Text;

/// <summary>One prompt's conditioning: the text encoder's last hidden state, and whether the cache served it.</summary>
/// <param name="Embeds">[1, T, D] in the model dtype, owned by the caller's dispose scope.</param>
public sealed record PromptEmbedding(Tensor Embeds, bool FromCache);
