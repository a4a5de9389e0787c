using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>A sigma-family schedule before interleaving.</summary>
/// <param name="Timesteps">The timesteps, descending.</param>
/// <param name="TimestepDtype">float32, or float64 where diffusers keeps numpy's (Karras timesteps).</param>
/// <param name="Sigmas">One float32 sigma per timestep, then the final 0.</param>
/// <param name="LogSigmas">log of the training sigmas (float32), for <c>_sigma_to_t</c>.</param>
public sealed record InterpolatedSigmas(
    double[] Timesteps, ScalarType TimestepDtype, float[] Sigmas, float[] LogSigmas);
