using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// Runs a convolution whose output width is not a multiple of 16 (a UNet's or VAE's <c>conv_out</c>: 320→4, 512→8,
/// 128→3) so that bfloat16 on the CPU gives right values.
/// </summary>
/// <remarks>
/// Why: the oneDNN inside libtorch 2.10 (v3.7.1) picks its blocked direct kernel (<c>jit_bf16:avx512_core_bf16</c>,
/// NCHW input reordered to <c>aBcd16b</c>) for a bfloat16 convolution on an AVX-512 CPU, and that kernel returns wrong
/// values when the output channels leave a partial block of 16: 20–45% of the output range off on an AMD EPYC
/// (Zen 4, avx512_bf16), every shape with such a width, 3x3 kernels and with or without bias, where a float32 run on
/// the same bfloat16-rounded inputs differs by 0.2–0.4% (bfloat16 rounding). PyTorch 1.13 (the reference stack, its own
/// oneDNN) stays at rounding level on the same machine. The same kernel fed NHWC (channels-last) input is right, so
/// such convolutions get NHWC input here; other dtypes and devices, and widths that fill whole blocks, are untouched.
/// </remarks>
public static class NarrowConvolution
{
    private const long OneDnnChannelBlock = 16;

    /// <param name="conv">The convolution (any kernel size).</param>
    /// <param name="input">[B, C_in, H, W] in any memory layout.</param>
    /// <returns>[B, C_out, H', W'], NCHW-contiguous.</returns>
    public static Tensor Forward(Conv2d conv, Tensor input)
    {
        if (!NeedsChannelsLast(input, conv.weight!.shape[0]))
            return conv.forward(input);
        using var nhwc = ChannelsLast.Of(input); // [B, C_in, H, W], NHWC in memory
        using var output = conv.forward(nhwc);  // [B, C_out, H', W'], NHWC in memory
        return output.contiguous();
    }

    /// <summary>True where the NCHW oneDNN kernel would be used for a bfloat16 output with a partial
    /// channel block.</summary>
    public static bool NeedsChannelsLast(Tensor input, long outChannels) =>
        input.dtype == ScalarType.BFloat16
            && input.device_type == DeviceType.CPU && outChannels % OneDnnChannelBlock != 0;
}
