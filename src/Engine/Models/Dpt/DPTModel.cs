using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTModel</c> with hybrid embeddings and no pooler: BiT + ViT. The depth head reads the chosen
/// layers without the final <c>layernorm</c>; the layer is kept because its weights are part of the checkpoint.
/// </summary>
public sealed class DPTModel : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly DPTViTHybridEmbeddings embeddings;
    private readonly DPTViTEncoder encoder;
    private readonly LayerNorm layernorm;
#pragma warning restore IDE1006
    private readonly int[] _vitOutputLayers;

    public DPTModel(DPTConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(DPTModel))
    {
        _vitOutputLayers = config.VitOutputLayers;
        embeddings = new DPTViTHybridEmbeddings(config, device, dtype);
        encoder = new DPTViTEncoder(config, device, dtype);
        layernorm = nn.LayerNorm(config.HiddenSize, eps: config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="pixelValues">[B, 3, image_size, image_size]</param>
    /// <param name="keepAllLayers">Return every ViT layer's output (for tests), not only the neck's.</param>
    public DPTModelOutput Forward(Tensor pixelValues, bool keepAllLayers = false)
    {
        var embedded = embeddings.Forward(pixelValues);
        var layers = encoder.ForwardLayers(embedded.Tokens, i => keepAllLayers || _vitOutputLayers.Contains(i));
        var neckInputs = new List<Tensor> { embedded.Stages[0], embedded.Stages[1] };
        neckInputs.AddRange(_vitOutputLayers.Select(i => layers[i]));
        return new DPTModelOutput(neckInputs, embedded, layers);
    }

    /// <summary>The final LayerNorm (unused by depth estimation; transformers' <c>last_hidden_state</c>).</summary>
    /// <param name="lastLayerOutput">[B, T, D]</param>
    public Tensor FinalLayerNorm(Tensor lastLayerOutput) => layernorm.forward(lastLayerOutput);
}
