using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>A pre-norm transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x)).</summary>
public sealed class CLIPEncoderLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly CLIPAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly CLIPMLP mlp;
    private readonly LayerNorm layer_norm2;
#pragma warning restore IDE1006

    public CLIPEncoderLayer(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPEncoderLayer))
    {
        self_attn = new CLIPAttention(config, dtype, device);
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        mlp = new CLIPMLP(config, dtype, device);
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        Tensor x = hiddenStates.ScalarSafe() + self_attn.forward(layer_norm1.forward(hiddenStates));
        x = x.ScalarSafe() + mlp.forward(layer_norm2.forward(x));
        return x.MoveToOuterDisposeScope();
    }
}
