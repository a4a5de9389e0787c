using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitGroupNormActivation</c>: GroupNorm(num_groups, eps 1e-5), then ReLU unless told not to.
/// Keys <c>weight</c>/<c>bias</c> sit on the module itself, so it wraps no child: it is a GroupNorm.</summary>
internal static class BitGroupNormActivation
{
    public static GroupNorm Create(BitConfig config, long channels, Device? device, ScalarType? dtype) =>
        nn.GroupNorm(config.NumGroups, channels, eps: 1e-5, affine: true, device: device, dtype: dtype);

    /// <param name="input">[B, C, H, W]</param>
    public static Tensor Forward(GroupNorm norm, Tensor input, bool activation) =>
        activation ? nn.functional.relu(norm.forward(input), inplace: true) : norm.forward(input);
}
