using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' BiT <c>WeightStandardizedConv2d</c>: before each use the kernel is standardised per output channel
/// (mean 0, biased variance 1, eps 1e-8), and with SAME padding a strided kernel pads the input dynamically.
/// No bias (BiT's convolutions have none).
/// </summary>
public sealed class WeightStandardizedConv2d : nn.Module<Tensor, Tensor>, IReplaceableParameters
{
#pragma warning disable IDE1006 // the field is the state-dict key
    private Parameter weight; // [out, in, k, k]
#pragma warning restore IDE1006
    private readonly long _kernel;
    private readonly long _stride;
    private readonly long _staticPadding;
    private readonly bool _dynamicPadding;
    private readonly double _eps;

    /// <param name="samePadding">transformers' <c>padding="SAME"</c>: static (k-1)/2 at stride 1, dynamic TF padding
    /// above; otherwise PyTorch's default ((stride-1) + (k-1)) / 2.</param>
    public WeightStandardizedConv2d(long inChannels, long outChannels, long kernel, long stride, bool samePadding,
        double eps = 1e-8, Device? device = null, ScalarType? dtype = null) : base(nameof(WeightStandardizedConv2d))
    {
        _kernel = kernel;
        _stride = stride;
        _eps = eps;
        _dynamicPadding = samePadding && !(stride == 1 && (kernel - 1) % 2 == 0);
        _staticPadding = _dynamicPadding ? 0 : ((stride - 1) + (kernel - 1)) / 2;
        var table = torch.empty(
            new[] { outChannels, inChannels, kernel, kernel }, dtype ?? ScalarType.Float32, device ?? torch.CPU);
        if (table.device_type != DeviceType.META)
        {
            using var noGrad = torch.no_grad();
            nn.init.kaiming_normal_(table, mode: nn.init.FanInOut.FanOut, nonlinearity: nn.init.NonlinearityType.ReLU);
        }
        weight = new Parameter(table, requires_grad: false);
        RegisterComponents();
    }

    /// <param name="input">[B, in, H, W]</param>
    /// <returns>[B, out, ceil(H / stride), ceil(W / stride)] with SAME padding</returns>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var padded = _dynamicPadding ? TfSamePadding.Apply(input, _kernel, _stride) : input;
        return nn.functional.conv2d(padded, StandardizedWeight(input.dtype), null, strides: new[] { _stride, _stride },
            padding: new[] { _staticPadding, _staticPadding }).MoveToOuterDisposeScope();
    }

    /// <summary>(w - mean) / sqrt(var + eps) per output channel, computed in float32 (eps 1e-8 vanishes in half
    /// precision), then cast to <paramref name="dtype"/>.</summary>
    private Tensor StandardizedWeight(ScalarType dtype)
    {
        var flat = weight.to(ScalarType.Float32).reshape(weight.shape[0], -1); // [out, in·k·k]
        // [out, 1] each
        var (variance, mean) = torch.var_mean(flat, dimensions: new long[] { 1 }, unbiased: false, keepdim: true);
        var standardized = (flat - mean) / (variance.ScalarSafe() + _eps).Tensor.sqrt(); // [out, in·k·k]
        return standardized.reshape(weight.shape).to(dtype); // [out, in, k, k]
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
