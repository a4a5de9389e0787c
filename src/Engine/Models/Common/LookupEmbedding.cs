using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// <c>torch.nn.Embedding</c> without TorchSharp's native module: a [count, width] table and a row lookup.
/// TorchSharp builds its native Embedding by random-initialising the table on the CPU (1.3 s for CLIP's 49408×1024
/// tokens) even when asked for the meta device, and its <c>from_pretrained</c> keeps two different tensors for
/// the state dict and for forward. This one is a plain parameter, so a meta-built model costs nothing and
/// <see cref="ModuleParameters"/> can give it its weights from a file.
/// </summary>
public sealed class LookupEmbedding : nn.Module<Tensor, Tensor>, IReplaceableParameters
{
#pragma warning disable IDE1006 // the field is the state-dict key
    private Parameter weight;
#pragma warning restore IDE1006

    /// <param name="device">The meta device allocates nothing; otherwise the table is N(0, 1) as torch
    /// initialises it.</param>
    public LookupEmbedding(long count, long width, ScalarType? dtype = null, Device? device = null) : base("Embedding")
    {
        var table = torch.empty(new[] { count, width }, dtype ?? ScalarType.Float32, device ?? torch.CPU);
        if (table.device_type != DeviceType.META)
        {
            using var noGrad = torch.no_grad();
            table.normal_();
        }
        weight = new Parameter(table, requires_grad: false);
        RegisterComponents();
    }

    /// <param name="ids">[*] int64 row indices.</param>
    /// <returns>[*, width]</returns>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var rows = weight.index_select(0, ids.reshape(-1)); // [N, width]
        return rows.view(ids.shape.Append(weight.shape[1]).ToArray()).MoveToOuterDisposeScope(); // [*, width]
    }

    bool IReplaceableParameters.CanReplace(string name) => name == nameof(weight);

    void IReplaceableParameters.Replace(string name, Parameter parameter)
    {
        var old = weight;
        weight = parameter;
        ConditionallyRegisterParameter(name, parameter);
        old.Dispose();
    }
}
