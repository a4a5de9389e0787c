using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// PyTorch's <c>contiguous(memory_format=torch.channels_last)</c>, which TorchSharp does not expose: the same
/// [B, C, H, W] tensor stored as [B, H, W, C]. oneDNN picks its NHWC convolution path for such input.
/// </summary>
public static class ChannelsLast
{
    /// <param name="tensor">[B, C, H, W] (a 4-D weight [O, I, kH, kW] works the same way)</param>
    /// <returns>A new tensor, [B, C, H, W] viewed over NHWC storage.</returns>
    public static Tensor Of(Tensor tensor) => tensor.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
}
