using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

/// <summary>
/// diffusers' <c>Timesteps</c> (<c>get_timestep_embedding</c>): sinusoidal features of the timestep,
/// freq_i = exp(-ln(10000) · i / (half - freq_shift)), i = 0..half-1; features [sin(t·freq), cos(t·freq)],
/// swapped to [cos, sin] when <c>flip_sin_to_cos</c>. Computed in float32. No weights.
/// </summary>
public sealed class Timesteps : nn.Module<Tensor, Tensor>
{
    private const double MaxPeriod = 10000.0;
    private readonly long _numChannels;
    private readonly bool _flipSinToCos;
    private readonly double _freqShift;

    public Timesteps(long num_channels, bool flip_sin_to_cos, double freq_shift) : base(nameof(Timesteps))
    {
        _numChannels = num_channels;
        _flipSinToCos = flip_sin_to_cos;
        _freqShift = freq_shift;
        RegisterComponents();
    }

    /// <param name="timesteps">[B] (any numeric dtype)</param>
    /// <returns>[B, num_channels] float32</returns>
    public override Tensor forward(Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var half = _numChannels / 2;
        var exponent = ScalarSafeTensor.Arange(
            0, half, ScalarType.Float32, timesteps.device).ScalarSafe() * (-Math.Log(MaxPeriod));
        exponent = exponent / (half - _freqShift);
        var frequencies = exponent.Tensor.exp(); // [half]
        var angles = timesteps.to(ScalarType.Float32).unsqueeze(1) * frequencies.unsqueeze(0); // [B, half]
        var embedding = _flipSinToCos
            ? torch.cat(new[] { angles.cos(), angles.sin() }, dim: -1)  // [B, 2*half]
            : torch.cat(new[] { angles.sin(), angles.cos() }, dim: -1); // [B, 2*half]
        if (_numChannels % 2 == 1)
            embedding = nn.functional.pad(embedding, new long[] { 0, 1, 0, 0 }); // [B, num_channels]
        return embedding.MoveToOuterDisposeScope();
    }
}
