using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>One module tensor and where it comes from in the checkpoint.</summary>
/// <param name="Component">Which network the module tensor belongs to.</param>
/// <param name="SourceKey">Original (ldm) key, e.g. <c>first_stage_model.encoder.mid.attn_1.q.weight</c>.</param>
/// <param name="SourceShape">Shape of the checkpoint tensor.</param>
/// <param name="ModuleKey">diffusers / transformers state-dict key, e.g.
/// <c>encoder.mid_block.attentions.0.to_q.weight</c>.</param>
/// <param name="ModuleShape">Shape of the module tensor.</param>
/// <param name="Conversion">How the values are carried over.</param>
/// <param name="Chunk">For <see cref="LdmConversion.RowChunk"/>: which of <paramref name="Chunks"/>
/// equal row blocks.</param>
public sealed record LdmKeyMapping(
    SingleFileComponent Component,
    string SourceKey,
    long[] SourceShape,
    string ModuleKey,
    long[] ModuleShape,
    LdmConversion Conversion,
    int Chunk = 0,
    int Chunks = 1)
{
    /// <summary>The module tensor's values from the checkpoint tensor (a view where possible; no copy
    /// for Copy).</summary>
    public Tensor ToModule(Tensor source) => Conversion switch
    {
        LdmConversion.Copy => source.alias(),
        LdmConversion.Conv1x1ToLinear => source.reshape(ModuleShape),
        LdmConversion.RowChunk => source.narrow(0, Chunk * ModuleShape[0], ModuleShape[0]),
        _ => throw new InvalidOperationException($"unknown conversion {Conversion}"),
    };
}
