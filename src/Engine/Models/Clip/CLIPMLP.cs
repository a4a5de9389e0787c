using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>The feed-forward block of a CLIP layer: fc1, activation, fc2 (transformers' <c>CLIPMLP</c>).</summary>
public sealed class CLIPMLP : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Linear fc1;
    private readonly Linear fc2;
#pragma warning restore IDE1006
    private readonly bool _quickGelu;

    public CLIPMLP(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null) : base(nameof(CLIPMLP))
    {
        _quickGelu = config.HiddenAct switch
        {
            "gelu" => false,
            "quick_gelu" => true,
            _ =>
                throw new ArgumentException(
                    $"hidden_act '{config.HiddenAct}' is not supported (gelu or quick_gelu).", nameof(config)),
        };
        fc1 = nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: true, device: device, dtype: dtype);
        fc2 = nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: true, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenStates">[B, T, D]</param>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope();
        var x = fc1.forward(hiddenStates); // [B, T, I]
        // gelu: exact erf form (OpenCLIP). quick_gelu: x * sigmoid(1.702 x) (OpenAI CLIP).
        x = _quickGelu ? x * sigmoid(x.ScalarSafe() * 1.702) : nn.functional.gelu(x);
        return fc2.forward(x).MoveToOuterDisposeScope(); // [B, T, D]
    }
}
