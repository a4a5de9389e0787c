using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>TimestepEmbedding</c>: linear_1 → activation → linear_2.</summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Linear linear_1;
    private readonly Linear linear_2;
    private readonly Func<Tensor, Tensor> _activation;

    public TimestepEmbedding(
        long in_channels, long time_embed_dim, string act_fn = "silu", Device? device = null, ScalarType? dtype = null)
        : base(nameof(TimestepEmbedding))
    {
        linear_1 = nn.Linear(in_channels, time_embed_dim, hasBias: true, device: device, dtype: dtype);
        linear_2 = nn.Linear(time_embed_dim, time_embed_dim, hasBias: true, device: device, dtype: dtype);
        _activation = Activations.Get(act_fn);
        RegisterComponents();
    }

    /// <param name="input">[B, in_channels]</param>
    /// <returns>[B, time_embed_dim]</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return linear_2.forward(_activation(linear_1.forward(input))).MoveToOuterDisposeScope();
    }
}
