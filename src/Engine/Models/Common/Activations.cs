using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>The activation functions diffusers' <c>act_fn</c> config field may name (diffusers'
/// <c>get_activation</c>).</summary>
public static class Activations
{
    /// <summary>Returns the function for <paramref name="name"/>; <paramref name="field"/> names the config field
    /// in errors.</summary>
    /// <param name="inPlace">Overwrite the argument (saves an allocation): only for tensors the caller
    /// created itself.</param>
    public static Func<Tensor, Tensor> Get(string name, string field = "act_fn", bool inPlace = false) => name switch
    {
        "silu" or "swish" => x => nn.functional.silu(x, inPlace),
        "mish" => x => Mish(x, inPlace),
        "gelu" => x => inPlace ? x.gelu_() : nn.functional.gelu(x),
        "relu" => x => nn.functional.relu(x, inPlace),
        _ =>
            throw new NotSupportedException(
                $"config.json: '{field}' = \"{name}\" is not supported (expected silu, swish, mish, gelu or relu)."),
    };

    /// <summary>
    /// x · tanh(softplus(x)), with softplus as log(1 + exp(x)): the formula PyTorch's own mish kernel evaluates (no
    /// softplus threshold). Why not TorchSharp's mish: it passes softplus's beta and threshold as numbers that become
    /// Scalars it does not keep alive (see <see cref="Runtime.ScalarSafeTensor"/>); these operations take none.
    /// </summary>
    private static Tensor Mish(Tensor x, bool inPlace)
    {
        using var exp = x.exp();
        using var softplus = exp.log1p();
        using var tanh = softplus.tanh();
        return inPlace ? x.mul_(tanh).alias() : x.mul(tanh);
    }
}
