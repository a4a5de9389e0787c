using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>Token embedding plus learned absolute position embedding (transformers'
/// <c>CLIPTextEmbeddings</c>).</summary>
public sealed class CLIPTextEmbeddings : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly LookupEmbedding token_embedding;
    private readonly LookupEmbedding position_embedding;
#pragma warning restore IDE1006

    public CLIPTextEmbeddings(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPTextEmbeddings))
    {
        token_embedding = new LookupEmbedding(config.VocabSize, config.HiddenSize, dtype, device);
        position_embedding = new LookupEmbedding(config.MaxPositionEmbeddings, config.HiddenSize, dtype, device);
        MaxPositions = config.MaxPositionEmbeddings;
        // transformers keeps position ids in a non-persistent buffer (arange); it is not part of the state dict,
        // so it is computed in forward instead, and a checkpoint copy of it is ignored by the loader.
        RegisterComponents();
    }

    /// <summary>The longest sequence the position table covers.</summary>
    public int MaxPositions { get; }

    /// <param name="inputIds">[B, T] int64 token ids, T ≤ max_position_embeddings.</param>
    public override Tensor forward(Tensor inputIds) => forward(inputIds, tokenEmbeds: null);

    /// <summary>The token-embedding rows of <paramref name="inputIds"/>, before positions are added:
    /// [B, T, D].</summary>
    public Tensor EmbedTokens(Tensor inputIds) => token_embedding.forward(inputIds);

    /// <param name="inputIds">[B, T] int64 token ids, T ≤ max_position_embeddings.</param>
    /// <param name="tokenEmbeds">[B, T, D] token embeddings to use instead of the table's rows for
    /// <paramref name="inputIds"/> (transformers' <c>inputs_embeds</c>): textual-inversion vectors
    /// replace some.</param>
    public Tensor forward(Tensor inputIds, Tensor? tokenEmbeds)
    {
        using var scope = NewDisposeScope();
        var seqLength = inputIds.shape[^1];
        if (seqLength > MaxPositions)
            throw new ArgumentException(
                $"Sequence length {seqLength} exceeds max_position_embeddings {MaxPositions}.", nameof(inputIds));
        var positionIds = ScalarSafeTensor.Arange(seqLength, ScalarType.Int64, inputIds.device).unsqueeze(0); // [1, T]
        Tensor embeddings = (tokenEmbeds ?? token_embedding.forward(inputIds)).ScalarSafe()
            + position_embedding.forward(positionIds); // [B, T, D]
        return embeddings.MoveToOuterDisposeScope();
    }
}
