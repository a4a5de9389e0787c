using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>FeedForward</c> with <c>activation_fn="geglu"</c>, mult 4: <c>net.0</c> = GEGLU(dim → 4·dim),
/// <c>net.1</c> = Dropout (no weights), <c>net.2</c> = Linear(4·dim → dim).
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    public FeedForward(long dim, long mult = 4, Device? device = null, ScalarType? dtype = null)
        : base(nameof(FeedForward))
    {
        var innerDim = dim * mult;
        net = nn.ModuleList<nn.Module<Tensor, Tensor>>(
            new GEGLU(dim, innerDim, device, dtype),
            nn.Dropout(0.0),
            nn.Linear(innerDim, dim, hasBias: true, device: device, dtype: dtype));
        RegisterComponents();
    }

    /// <param name="input">[B, N, dim]</param>
    /// <returns>[B, N, dim]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var gated = net[0].forward(input); // [B, N, 4*dim]
        return net[2].forward(gated).MoveToOuterDisposeScope(); // [B, N, dim]
    }
}
