using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTViTEncoder</c>: the stack of ViT layers.</summary>
public sealed class DPTViTEncoder : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<DPTViTLayer> layer;
#pragma warning restore IDE1006

    public DPTViTEncoder(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTEncoder))
    {
        layer = new ModuleList<DPTViTLayer>();
        for (int i = 0; i < config.NumHiddenLayers; i++) layer.Add(new DPTViTLayer(config, device, dtype));
        RegisterComponents();
    }

    /// <summary>Runs every layer; <paramref name="keep"/> says which layer outputs to return (by layer index), the rest
    /// are freed as soon as the next layer has run.</summary>
    /// <param name="tokens">[B, T, D]</param>
    /// <returns>The kept layer outputs, each [B, T, D], by layer index.</returns>
    public IReadOnlyDictionary<int, Tensor> ForwardLayers(Tensor tokens, Func<int, bool> keep)
    {
        var kept = new Dictionary<int, Tensor>();
        var hidden = tokens;
        bool hiddenKept = true; // the caller's tokens are not ours to free
        for (int i = 0; i < layer.Count; i++)
        {
            var next = layer[i].forward(hidden);
            if (!hiddenKept) hidden.Dispose();
            hidden = next;
            hiddenKept = keep(i);
            if (hiddenKept) kept[i] = hidden;
        }
        if (!hiddenKept) hidden.Dispose();
        return kept;
    }

    /// <returns>The last layer's output, [B, T, D].</returns>
    public override Tensor forward(Tensor tokens) => ForwardLayers(tokens, i => i == layer.Count - 1)[layer.Count - 1];
}
