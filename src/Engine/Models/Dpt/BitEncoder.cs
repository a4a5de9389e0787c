using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitEncoder</c>: the stages, stride 1 for the first and 2 after (DPT-Hybrid:
/// /4, /8, /16).</summary>
public sealed class BitEncoder : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<BitStage> stages;
#pragma warning restore IDE1006

    public BitEncoder(BitConfig config, Device? device = null, ScalarType? dtype = null) : base(nameof(BitEncoder))
    {
        stages = new ModuleList<BitStage>();
        long previous = config.EmbeddingSize;
        for (int i = 0; i < config.Depths.Length; i++)
        {
            long channels = config.StageChannels(i);
            stages.Add(new BitStage(config, previous, channels, i == 0 ? 1 : 2, config.Depths[i], device, dtype));
            previous = channels;
        }
        RegisterComponents();
    }

    /// <summary>Every stage's output, in order.</summary>
    /// <param name="embedding">[B, E, H/4, W/4], the stem's output</param>
    /// <returns>[B, C_i, H/(4·2^i), W/(4·2^i)] for stage i (rounded up)</returns>
    public IReadOnlyList<Tensor> ForwardStages(Tensor embedding)
    {
        var outputs = new List<Tensor>();
        var hidden = embedding;
        foreach (var stage in stages)
        {
            hidden = stage.forward(hidden);
            outputs.Add(hidden);
        }
        return outputs;
    }

    /// <returns>The last stage's output.</returns>
    public override Tensor forward(Tensor embedding)
    {
        var outputs = ForwardStages(embedding);
        for (int i = 0; i < outputs.Count - 1; i++) outputs[i].Dispose();
        return outputs[^1];
    }
}
