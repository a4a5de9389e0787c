using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTReassembleStage</c> for DPT-Hybrid: the BiT maps (stages in <c>neck_ignore_stages</c>) pass
/// unchanged; each ViT output drops its CLS token into a "project" readout (concatenate it to every token, then
/// Linear(2D → D) + GELU), becomes a grid again, and is reassembled by its <see cref="DPTReassembleLayer"/>.
/// </summary>
public sealed class DPTReassembleStage : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layers;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> readout_projects;
#pragma warning restore IDE1006
    private readonly int[] _ignoredStages;

    public DPTReassembleStage(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTReassembleStage))
    {
        _ignoredStages = config.NeckIgnoreStages;
        layers = new ModuleList<nn.Module<Tensor, Tensor>>();
        readout_projects = new ModuleList<nn.Module<Tensor, Tensor>>();
        for (int i = 0; i < config.NeckHiddenSizes.Length; i++)
        {
            if (i <= 1)
            {
                // DPT-Hybrid's first two reassemble slots are identities (their inputs are BiT maps).
                layers.Add(nn.Identity());
                readout_projects.Add(nn.Sequential(nn.Identity()));
                continue;
            }
            layers.Add(new DPTReassembleLayer(
                config, config.NeckHiddenSizes[i], config.ReassembleFactors[i], device, dtype));
            readout_projects.Add(nn.Sequential(
                ("0", nn.Linear(2L * config.HiddenSize, config.HiddenSize, device: device, dtype: dtype)),
                ("1", nn.GELU())));
        }
        RegisterComponents();
    }

    /// <param name="hiddenStates">BiT maps [B, C, h, w] for the ignored stages, ViT outputs [B, 1 + n², D]
    /// for the rest</param>
    /// <returns>One map per input: the ignored ones are the inputs themselves; the others are new [B, C_i,
    /// h_i, w_i].</returns>
    public IReadOnlyList<Tensor> Forward(IReadOnlyList<Tensor> hiddenStates)
    {
        var output = new List<Tensor>();
        for (int i = 0; i < hiddenStates.Count; i++)
            output.Add(_ignoredStages.Contains(i) ? hiddenStates[i] : Reassemble(i, hiddenStates[i]));
        return output;
    }

    private Tensor Reassemble(int index, Tensor hiddenState)
    {
        using var scope = NewDisposeScope();
        long batch = hiddenState.shape[0], tokens = hiddenState.shape[1] - 1, channels = hiddenState.shape[2];
        long side = (long)Math.Sqrt(tokens);
        if (side * side != tokens)
            throw new ArgumentException(
                $"DPT-Hybrid expects a square token grid, got {tokens} tokens.", nameof(hiddenState));
        var cls = hiddenState[.., 0]; // [B, D]
        var patches = hiddenState[.., 1..]; // [B, n², D]
        var readout = cls.unsqueeze(1).expand_as(patches); // [B, n², D]
        var projected = readout_projects[index].forward(torch.cat(new[] { patches, readout }, -1)); // [B, n², D]
        var grid = projected.permute(0, 2, 1).reshape(batch, channels, side, side); // [B, D, n, n]
        return layers[index].forward(grid).MoveToOuterDisposeScope(); // [B, C_i, n·f, n·f]
    }
}
