using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// TorchSharp 0.107's GroupNorm, when given a dtype or device, leaves its affine parameters uninitialised (garbage,
/// even NaN), unlike PyTorch, which sets weight = 1 and bias = 0. Loaded models overwrite them, but a model built
/// with random weights (benchmark, architecture tests) must start from PyTorch's values, so constructors call this.
/// </summary>
internal static class NormInitialization
{
    public static void Reset(nn.Module root)
    {
        using var noGrad = torch.no_grad();
        foreach (var (_, module) in root.named_modules())
        {
            if (module is not (TorchSharp.Modules.GroupNorm or TorchSharp.Modules.LayerNorm)) continue;
            foreach (var (name, parameter) in module.named_parameters(recurse: false))
            {
                if (parameter.device_type == DeviceType.META) continue;
                if (name == "weight") parameter.ScalarSafe().Fill(1.0);
                else if (name == "bias") parameter.zero_();
            }
        }
    }
}
