namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// The noise-level arithmetic both scheduler families share: Karras et al.'s sigma ramp and diffusers'
/// <c>_sigma_to_t</c>, which maps a noise level back to a (fractional) training timestep.
/// </summary>
internal static class SigmaConversions
{
    /// <summary>Karras et al. (2022) eq. 5: sigma_i = (max^(1/rho) + i/(n-1) (min^(1/rho) -
    /// max^(1/rho)))^rho, rho = 7.</summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n)
    {
        const double rho = 7.0;
        var ramp = NumpyCompat.Linspace(0, 1, n);
        var minInvRho = Math.Pow(sigmaMin, 1 / rho);
        var maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(r => Math.Pow(maxInvRho + r * (minInvRho - maxInvRho), rho)).ToArray();
    }

    /// <summary>
    /// diffusers' <c>_sigma_to_t</c> on numpy arrays: the fractional timestep whose log-sigma interpolates linearly to
    /// log(sigma). numpy promotes as written: distances and weight in float32, the final blend in float64.
    /// </summary>
    public static double SigmaToT(double sigma, float[] logSigmas)
    {
        var (lowIdx, w) = SigmaToTWeight(Math.Log(Math.Max(sigma, 1e-10)), logSigmas);
        return (double)(1f - w) * lowIdx + (double)w * (lowIdx + 1);
    }

    /// <summary><c>_sigma_to_t</c> as KDPM2 calls it on torch float32 tensors: everything in float32.</summary>
    public static float SigmaToTFloat32(float sigma, float[] logSigmas)
    {
        var (lowIdx, w) = SigmaToTWeight(Math.Log(Math.Max(sigma, 1e-10)), logSigmas);
        return (1f - w) * lowIdx + w * (lowIdx + 1);
    }

    /// <summary>The timesteps of <paramref name="sigmas"/>, rounded half to even as diffusers'
    /// <c>np.round</c>.</summary>
    public static double[] RoundedTimesteps(double[] sigmas, float[] logSigmas) =>
        NumpyCompat.Round(sigmas.Select(s => SigmaToT(s, logSigmas)).ToArray());

    /// <summary>The sigma the schedule ends at: <c>final_sigmas_type</c> "zero" or "sigma_min" (the smallest
    /// training sigma).</summary>
    public static double FinalSigma(string? finalSigmasType, double sigmaMin) => finalSigmasType switch
    {
        "sigma_min" => sigmaMin,
        "zero" => 0.0,
        var other => throw new ArgumentException($"Unknown final_sigmas_type '{other}' (expected zero or sigma_min)."),
    };

    private static (int LowIdx, float W) SigmaToTWeight(double logSigma, float[] logSigmas)
    {
        var logSigma32 = (float)logSigma;
        // low_idx = last index with log_sigma - log_sigmas[i] >= 0 (cumsum(...).argmax), at most len - 2.
        var lowIdx = 0;
        for (var i = 0; i < logSigmas.Length; i++)
            if (logSigma32 - logSigmas[i] >= 0) lowIdx = i;
        lowIdx = Math.Min(lowIdx, logSigmas.Length - 2);
        var low = logSigmas[lowIdx];
        var high = logSigmas[lowIdx + 1];
        var w = (low - logSigma32) / (low - high);
        return (lowIdx, Math.Clamp(w, 0f, 1f));
    }
}
