using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>The activation functions diffusers' <c>act_fn</c> config field may name (diffusers' <c>get_activation</c>).</summary>
public static class Activations
{
    /// <summary>Returns the function for <paramref name="name"/>; <paramref name="field"/> names the config field in errors.</summary>
    public static Func<Tensor, Tensor> Get(string name, string field = "act_fn") => name switch
    {
        "silu" or "swish" => x => nn.functional.silu(x),
        "mish" => x => nn.functional.mish(x),
        "gelu" => x => nn.functional.gelu(x),
        "relu" => x => nn.functional.relu(x),
        _ => throw new NotSupportedException($"config.json: '{field}' = \"{name}\" is not supported (expected silu, swish, mish, gelu or relu)."),
    };
}
