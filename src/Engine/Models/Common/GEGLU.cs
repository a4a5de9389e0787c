using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>GEGLU</c>: one projection to 2·dim_out, split into value and gate, value · gelu(gate) (exact
/// erf GELU).</summary>
public sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public GEGLU(long dim_in, long dim_out, Device? device = null, ScalarType? dtype = null) : base(nameof(GEGLU))
    {
        proj = nn.Linear(dim_in, dim_out * 2, hasBias: true, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="input">[B, N, dim_in]</param>
    /// <returns>[B, N, dim_out]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var projected = proj.forward(input); // [B, N, 2*dim_out]
        var halves = projected.chunk(2, dim: -1); // 2 x [B, N, dim_out]
        return nn.functional.gelu(halves[1]).mul_(halves[0]).MoveToOuterDisposeScope();
    }
}
