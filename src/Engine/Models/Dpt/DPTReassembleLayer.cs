using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>DPTReassembleLayer</c>: a 1×1 projection to the neck width, then a resize by
/// <c>factor</c> (transposed convolution above 1, none at 1, a strided 3×3 convolution below 1).</summary>
public sealed class DPTReassembleLayer : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly Conv2d projection;
    private readonly nn.Module<Tensor, Tensor>? resize;
#pragma warning restore IDE1006

    public DPTReassembleLayer(
        DPTConfig config, long channels, double factor, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTReassembleLayer))
    {
        projection = nn.Conv2d(config.HiddenSize, channels, 1, device: device, dtype: dtype);
        if (factor > 1)
            resize = nn.ConvTranspose2d(
                channels, channels, (long)factor, stride: (long)factor, padding: 0, device: device, dtype: dtype);
        else if (factor < 1)
            resize = nn.Conv2d(
                channels, channels, 3, stride: (long)(1 / factor), padding: 1L, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="hiddenState">[B, D, h, w]</param>
    /// <returns>[B, channels, h·factor, w·factor] (rounded up below 1)</returns>
    public override Tensor forward(Tensor hiddenState)
    {
        if (resize is null) return projection.forward(hiddenState);
        using var projected = projection.forward(hiddenState);
        return resize.forward(projected);
    }
}
