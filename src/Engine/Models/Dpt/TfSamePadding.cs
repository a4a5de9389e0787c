using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// TensorFlow's "SAME" padding computed from the input size (transformers' <c>DynamicPad2d</c>): enough zeros that a
/// stride-s window covers ceil(x / s) outputs, the odd one going to the bottom/right.
/// </summary>
internal static class TfSamePadding
{
    /// <summary>Total padding along one side of length <paramref name="size"/>.</summary>
    public static long Amount(long size, long kernel, long stride, long dilation = 1) =>
        Math.Max((((size + stride - 1) / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0);

    /// <param name="input">[B, C, H, W]</param>
    /// <returns>[B, C, H + pad_h, W + pad_w], or <paramref name="input"/> itself when no padding is needed</returns>
    public static Tensor Apply(Tensor input, long kernel, long stride, double value = 0.0)
    {
        long padHeight = Amount(input.shape[2], kernel, stride), padWidth = Amount(input.shape[3], kernel, stride);
        if (padHeight == 0 && padWidth == 0) return input;
        return nn.functional.pad(
            input, new[] { padWidth / 2, padWidth - padWidth / 2, padHeight / 2, padHeight - padHeight / 2 },
            PaddingModes.Constant, value);
    }
}
