using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>Embeddings, encoder and final layer norm (transformers' <c>CLIPTextTransformer</c>).</summary>
public sealed class CLIPTextTransformer : nn.Module<Tensor, CLIPTextModelOutput>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly CLIPTextEmbeddings embeddings;
    private readonly CLIPEncoder encoder;
    private readonly LayerNorm final_layer_norm;
#pragma warning restore IDE1006
    private readonly int _eosTokenId;

    public CLIPTextTransformer(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPTextTransformer))
    {
        embeddings = new CLIPTextEmbeddings(config, dtype, device);
        encoder = new CLIPEncoder(config, dtype, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        _eosTokenId = config.EosTokenId;
        RegisterComponents();
    }

    /// <param name="inputIds">[B, T] int64 token ids.</param>
    public override CLIPTextModelOutput forward(Tensor inputIds) => forward(inputIds, outputHiddenStates: false);

    /// <param name="inputIds">[B, T] int64 token ids.</param>
    /// <param name="outputHiddenStates">Also return the embeddings and every layer's output.</param>
    public CLIPTextModelOutput forward(Tensor inputIds, bool outputHiddenStates) =>
        forward(inputIds, outputHiddenStates, tokenEmbeds: null);

    /// <summary>The token-embedding rows of <paramref name="inputIds"/>: [B, T, D].</summary>
    public Tensor EmbedTokens(Tensor inputIds) => embeddings.EmbedTokens(inputIds);

    /// <param name="inputIds">[B, T] int64 token ids (they still locate the end token for the pooled output).</param>
    /// <param name="outputHiddenStates">Also return the embeddings and every layer's output.</param>
    /// <param name="tokenEmbeds">[B, T, D] token embeddings to use instead of the table's rows, or null.</param>
    public CLIPTextModelOutput forward(Tensor inputIds, bool outputHiddenStates, Tensor? tokenEmbeds)
    {
        using var scope = NewDisposeScope();
        var hiddenStates = outputHiddenStates ? new List<Tensor>() : null;
        var x = embeddings.forward(inputIds, tokenEmbeds); // [B, T, D]
        x = encoder.forward(x, hiddenStates); // [B, T, D]
        var lastHiddenState = final_layer_norm.forward(x); // [B, T, D]

        // End-of-text position per sequence. Configs written before transformers fixed eos_token_id carry 2:
        // then, as transformers does, the eot token is the largest id (49407), so argmax of the ids finds it.
        var eosIndex = _eosTokenId == 2
            ? inputIds.to(ScalarType.Int64).argmax(-1) // [B]
            : inputIds.ScalarSafe().Equal(_eosTokenId).to(ScalarType.Int32).argmax(-1); // [B]
        // [B]
        var batchIndex = ScalarSafeTensor.Arange(lastHiddenState.shape[0], ScalarType.Int64, lastHiddenState.device);
        var pooled = lastHiddenState.index(batchIndex, eosIndex); // [B, D]

        return new CLIPTextModelOutput(lastHiddenState, pooled, hiddenStates).MoveToOuterDisposeScope();
    }
}
