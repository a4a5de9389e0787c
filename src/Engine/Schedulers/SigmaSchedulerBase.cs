using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// The sigma-space (k-diffusion) family: Euler, Euler a, Heun, LMS, KDPM2 and KDPM2 a. They walk a table of noise
/// levels sigma = sqrt((1 - alpha_bar) / alpha_bar) ending at 0, scale the model input by 1 / sqrt(sigma² + 1), start
/// from noise of scale max sigma and noise clean samples as x_t = x_0 + sigma_t * noise.
/// </summary>
public abstract class SigmaSchedulerBase : SchedulerBase
{
    /// <param name="defaults">The scheduler's diffusers defaults (see <see cref="SchedulerBase"/>).</param>
    /// <param name="config">A scheduler_config.json (any scheduler's) with overrides merged in, or null.</param>
    /// <param name="supportsSamplePrediction">False where diffusers raises for prediction_type "sample".</param>
    /// <param name="extraKeys">Keys the scheduler knows whose diffusers default is None.</param>
    protected SigmaSchedulerBase(
        SchedulerConfig defaults, SchedulerConfig? config, bool supportsSamplePrediction = true,
        params string[] extraKeys) : base(defaults, config, extraKeys)
    {
        if (!supportsSamplePrediction && PredictionType == "sample")
            throw new NotSupportedException($"{Name} does not support prediction_type 'sample' (diffusers neither).");
        // Zero terminal SNR makes the last sigma infinite; diffusers sets alphas_cumprod[-1] to
        // 2^-24 to keep it finite.
        if (Config.RescaleBetasZeroSnr == true) SetLastAlphaCumprod(MathF.Pow(2, -24));
        // Before set_timesteps diffusers already has the full training sigmas (init_noise_sigma reads them).
        SigmaValues = Enumerable.Reverse(TrainSigmas()).Append(0f).ToArray();
    }

    /// <summary>The family's shared diffusers defaults; each scheduler adds its own keys with
    /// <c>with { }</c>.</summary>
    protected static SchedulerConfig FamilyDefaults(double betaStart, double betaEnd) => new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = betaStart,
        BetaEnd = betaEnd,
        BetaSchedule = "linear",
        PredictionType = "epsilon",
        TimestepSpacing = "linspace",
        StepsOffset = 0,
    };

    /// <summary>The schedule's noise levels (float32, descending, ending in the final sigma), one per
    /// timestep plus one.</summary>
    protected float[] SigmaValues { get; set; }

    /// <summary>k-diffusion init sigma: max sigma for linspace/trailing spacing, else sqrt(max^2 + 1)
    /// (float32).</summary>
    public override double InitNoiseSigma
    {
        get
        {
            if (SigmaValues.Length == 0) return 1.0;
            var max = SigmaValues.Max();
            return Config.TimestepSpacing is "linspace" or "trailing" ? max : MathF.Sqrt(max * max + 1f);
        }
    }

    /// <summary>x / sqrt(sigma^2 + 1) at the current step's sigma.</summary>
    public override Tensor ScaleModelInput(Tensor sample, double timestep) =>
        ScaleBySigma(sample, SigmaValues[EnsureStepIndex(timestep)]);

    /// <summary>x = x0 + sigma * noise, sigma looked up by timestep; a timestep outside the schedule
    /// is an error.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var sigma = SigmasForAddNoise(originalSamples, timesteps, lastIfMissing: false);
        ScalarSafeTensor x0 = originalSamples, z = noise;
        return (x0 + z * (ScalarSafeTensor)sigma).Tensor.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// diffusers calls <c>set_timesteps(num_train_timesteps)</c> in <c>__init__</c> for the schedulers whose
    /// init_noise_sigma comes from that schedule; the step count is then "not set" again.
    /// </summary>
    protected void ScheduleEveryTrainingStep()
    {
        SetTimesteps(NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    /// <summary>
    /// The float32 timesteps of the family (descending): linspace over [0, T-1], leading
    /// (<c>arange(n) * (T // n) + steps_offset</c>) or trailing (<c>round(arange(T, 0, -T/n)) - 1</c>).
    /// </summary>
    protected double[] SpacedTimesteps(int n)
    {
        var spacing = Config.TimestepSpacing ?? "linspace";
        IEnumerable<float> values = spacing switch
        {
            "linspace" => NumpyCompat.Reverse(NumpyCompat.Linspace(0, NumTrainTimesteps - 1, n)).Select(t => (float)t),
            "leading" =>
                Enumerable.Range(0, n)
                    .Reverse()
                    .Select(i => (float)(i * (NumTrainTimesteps / n)) + (Config.StepsOffset ?? 0)),
            "trailing" =>
                NumpyCompat.Round(NumpyCompat.Arange(
                    NumTrainTimesteps, 0, -(NumTrainTimesteps / (double)n))).Select(t => (float)t - 1f),
            _ =>
                throw new ArgumentException(
                    $"Unknown timestep_spacing '{spacing}' (expected linspace, leading or trailing)."),
        };
        return values.Select(v => (double)v).ToArray();
    }

    /// <summary>
    /// The schedule of the family's <c>set_timesteps</c>: the spaced timesteps with the training sigmas interpolated at
    /// them (<c>np.interp</c>), then 0 appended, in float32. With Karras sigmas, the Karras ramp between the
    /// interpolated ends, and the timesteps mapped back from it by <c>_sigma_to_t</c> (rounded where diffusers rounds
    /// them), kept in numpy's float64 as diffusers keeps them.
    /// </summary>
    protected InterpolatedSigmas InterpolatedSchedule(int n, bool roundKarrasTimesteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        var trainSigmas = TrainSigmas();
        var logSigmas = Log32(trainSigmas);
        var timesteps = SpacedTimesteps(n);
        var sigmas = NumpyCompat.Interp(timesteps, trainSigmas);
        var timestepDtype = ScalarType.Float32;
        if (Config.UseKarrasSigmas == true)
        {
            sigmas = SigmaConversions.KarrasSigmas(sigmas[^1], sigmas[0], n);
            timesteps = roundKarrasTimesteps
                ? SigmaConversions.RoundedTimesteps(sigmas, logSigmas)
                : sigmas.Select(s => SigmaConversions.SigmaToT(s, logSigmas)).ToArray();
            timestepDtype = ScalarType.Float64;
        }
        return new InterpolatedSigmas(timesteps, timestepDtype, NumpyCompat.ToFloat32(sigmas.Append(0.0)), logSigmas);
    }

    /// <summary><see cref="InterpolatedSchedule"/> installed as it is: one sigma per timestep, then 0.</summary>
    protected void SetInterpolatedSchedule(int n)
    {
        var schedule = InterpolatedSchedule(n, roundKarrasTimesteps: false);
        SigmaValues = schedule.Sigmas;
        NumInferenceSteps = n;
        SetSchedule(schedule.Timesteps, schedule.TimestepDtype, SigmaValues);
    }

    /// <summary>
    /// torch's <c>cat([v[:1], v[1:end].repeat_interleave(2), v[-1:]])</c>: the second-order schedulers visit each
    /// later point twice. <paramref name="withLast"/> includes the final value in the repeated run
    /// (KDPM2) or not (Heun).
    /// </summary>
    protected static float[] RepeatInterleaved(float[] values, bool withLast) =>
        [values[0], .. values[1..(withLast ? values.Length : values.Length - 1)].SelectMany(v => new[] { v, v }),
            values[^1]];

    /// <summary>k-diffusion input scaling: x / sqrt(sigma^2 + 1), the coefficient rounded to float32 as
    /// torch does.</summary>
    protected static Tensor ScaleBySigma(Tensor sample, float sigma) =>
        (ScalarSafeTensor)sample / (double)MathF.Sqrt(sigma * sigma + 1f);

    /// <summary>
    /// x0 from the model output at noise level sigma (k-diffusion parameterisation): epsilon x0 = x - sigma eps;
    /// v-prediction x0 = v (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1); sample x0 = output.
    /// </summary>
    protected Tensor PredictOriginalSample(Tensor modelOutput, Tensor sample, double sigma) =>
        PredictOriginalSampleKept(modelOutput, sample, sigma);

    private ScalarSafeTensor PredictOriginalSampleKept(
        ScalarSafeTensor modelOutput, ScalarSafeTensor sample, double sigma) => PredictionType switch
    {
        "epsilon" => sample - sigma * modelOutput,
        "v_prediction" => modelOutput * (-sigma / Math.Sqrt(sigma * sigma + 1)) + sample / (sigma * sigma + 1),
        _ => modelOutput,
    };
}
