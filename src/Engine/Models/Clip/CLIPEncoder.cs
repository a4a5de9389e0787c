using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>The stack of <see cref="CLIPEncoderLayer"/>s (transformers' <c>CLIPEncoder</c>).</summary>
public sealed class CLIPEncoder : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<CLIPEncoderLayer> layers;
#pragma warning restore IDE1006

    public CLIPEncoder(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPEncoder))
    {
        layers = new ModuleList<CLIPEncoderLayer>();
        for (var i = 0; i < config.NumHiddenLayers; i++) layers.Add(new CLIPEncoderLayer(config, dtype, device));
        RegisterComponents();
    }

    /// <summary>Runs every layer; returns the output of the last one. [B, T, D] → [B, T, D]</summary>
    public override Tensor forward(Tensor inputsEmbeds) => forward(inputsEmbeds, hiddenStates: null);

    /// <summary>
    /// Runs every layer. When <paramref name="hiddenStates"/> is given, it receives the input followed by the output
    /// of each layer (num_hidden_layers + 1 tensors, as transformers' <c>output_hidden_states</c>); they belong to the
    /// caller's dispose scope.
    /// </summary>
    public Tensor forward(Tensor inputsEmbeds, List<Tensor>? hiddenStates)
    {
        using var scope = NewDisposeScope();
        var x = inputsEmbeds;
        hiddenStates?.Add(x.alias().MoveToOuterDisposeScope());
        foreach (var layer in layers)
        {
            x = layer.forward(x); // [B, T, D]
            hiddenStates?.Add(x.alias().MoveToOuterDisposeScope());
        }
        return x.alias().MoveToOuterDisposeScope();
    }
}
