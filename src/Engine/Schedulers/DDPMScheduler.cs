using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Denoising Diffusion Probabilistic Models (Ho et al. 2020, arXiv 2006.11239), diffusers <c>DDPMScheduler</c>:
/// ancestral sampling with the posterior variance; also the x4 upscaler's low-res noise scheduler.
/// </summary>
[DiffusersScheduler("DDPM: ancestral sampler of the original paper; needs many steps.")]
[SchedulerAlias("DDPM")]
public sealed class DDPMScheduler : SchedulerBase
{
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.0001,
        BetaEnd = 0.02,
        BetaSchedule = "linear",
        VarianceType = "fixed_small",
        ClipSample = true,
        PredictionType = "epsilon",
        Thresholding = false,
        DynamicThresholdingRatio = 0.995,
        ClipSampleRange = 1.0,
        SampleMaxValue = 1.0,
        TimestepSpacing = "leading",
        StepsOffset = 0,
        RescaleBetasZeroSnr = false,
    };

    private readonly string _varianceType;

    public DDPMScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        _varianceType = Config.VarianceType!;
        if (_varianceType is not ("fixed_small" or "fixed_small_log" or "fixed_large" or "fixed_large_log" or "learned"
            or "learned_range"))
            throw new ArgumentException(
                $"Unknown variance_type '{_varianceType}' (expected fixed_small, " +
                $"fixed_small_log, fixed_large, fixed_large_log, learned or learned_range).");
    }

    public override bool IsStochastic => true;

    public override void SetTimesteps(int numInferenceSteps)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                $"must be in 1..num_train_timesteps ({NumTrainTimesteps})");
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(
            DDIMScheduler.SpacedTimesteps(Config, NumTrainTimesteps, numInferenceSteps),
            ScalarType.Int64, sigmas: null);
    }

    private int PreviousTimestep(int t) => t - NumTrainTimesteps / (NumInferenceSteps ?? NumTrainTimesteps);

    /// <summary>
    /// Posterior variance (formulas 6, 7): beta~_t = (1 - a_{t-1}) / (1 - a_t) * beta_t with beta_t = 1 - a_t /
    /// a_{t-1}, clamped at 1e-20; the fixed_large variants use beta_t, the learned ones interpolate in log space.
    /// </summary>
    private Tensor VarianceTimesNoise(int t, Tensor? predictedVariance, Tensor noise)
    {
        var prevT = PreviousTimestep(t);
        double alphaProdT = AlphasCumprodValues[t];
        double alphaProdTPrev = prevT >= 0 ? AlphasCumprodValues[prevT] : 1.0;
        var currentBetaT = 1 - alphaProdT / alphaProdTPrev;
        var variance = Math.Max((1 - alphaProdTPrev) / (1 - alphaProdT) * currentBetaT, 1e-20);
        ScalarSafeTensor z = noise;
        switch (_varianceType)
        {
            case "fixed_small":
                return Math.Sqrt(variance) * z;
            case "fixed_small_log": // diffusers multiplies exp(0.5 log var) directly (no further sqrt)
                return Math.Exp(0.5 * Math.Log(variance)) * z;
            case "fixed_large":
                return Math.Sqrt(currentBetaT) * z;
            case "fixed_large_log": // log(beta_t) ** 0.5 as diffusers computes it (NaN for beta_t < 1)
                return Math.Sqrt(Math.Log(currentBetaT)) * z;
            case "learned":
                return ((ScalarSafeTensor)predictedVariance!).Pow(0.5) * z;
            // learned_range: v = frac log(beta_t) + (1 - frac) log(beta~_t), frac = (pred + 1) / 2; std = exp(v / 2)
            default:
            {
                var frac = ((ScalarSafeTensor)predictedVariance! + 1) / 2;
                var logVariance = frac * Math.Log(currentBetaT) + (1 - frac) * Math.Log(variance);
                return new ScalarSafeTensor((0.5 * logVariance).Tensor.exp()) * z;
            }
        }
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        if (NumInferenceSteps is null)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        using var scope = torch.NewDisposeScope();
        var t = (int)timestep;
        var prevT = PreviousTimestep(t);

        Tensor? predictedVariance = null;
        if (modelOutput.shape[1] == sample.shape[1] * 2 && _varianceType is "learned" or "learned_range")
        {
            var parts = modelOutput.split(sample.shape[1], 1);
            (modelOutput, predictedVariance) = (parts[0], parts[1]);
        }

        // 1. compute alphas, betas
        double alphaProdT = AlphasCumprodValues[t];
        double alphaProdTPrev = prevT >= 0 ? AlphasCumprodValues[prevT] : 1.0;
        var betaProdT = 1 - alphaProdT;
        var betaProdTPrev = 1 - alphaProdTPrev;
        var currentAlphaT = alphaProdT / alphaProdTPrev;
        var currentBetaT = 1 - currentAlphaT;

        // 2. compute predicted original sample from predicted noise also called "predicted x_0" of formula (15):
        //    x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
        ScalarSafeTensor x = sample, output = modelOutput;
        ScalarSafeTensor predOriginalSample = PredictionType switch
        {
            "epsilon" => (x - Math.Sqrt(betaProdT) * output) / Math.Sqrt(alphaProdT),
            "sample" => output,
            _ => Math.Sqrt(alphaProdT) * x - Math.Sqrt(betaProdT) * output,
        };

        // 3. Clip or threshold "predicted x_0"
        if (Config.Thresholding == true)
            predOriginalSample = ThresholdSample(predOriginalSample);
        else if (Config.ClipSample == true)
            predOriginalSample = predOriginalSample.Clamp(
                -Config.ClipSampleRange!.Value, Config.ClipSampleRange!.Value);

        // 4. Compute coefficients for pred_original_sample x_0 and current sample x_t, formula (7):
        //    mu = sqrt(a_{t-1}) beta_t / (1 - a_t) x0 + sqrt(alpha_t) (1 - a_{t-1}) / (1 - a_t) x_t
        var predOriginalSampleCoeff = Math.Sqrt(alphaProdTPrev) * currentBetaT / betaProdT;
        var currentSampleCoeff = Math.Sqrt(currentAlphaT) * betaProdTPrev / betaProdT;

        // 5. Compute predicted previous sample mu_t, formula (7)
        var predPrevSample = predOriginalSampleCoeff * predOriginalSample + currentSampleCoeff * x;

        // 6. Add noise: x_{t-1} = mu_t + sigma_t z (no noise at t = 0)
        if (t > 0)
            predPrevSample = predPrevSample + (ScalarSafeTensor)VarianceTimesNoise(
                t, predictedVariance, DrawNoise(noise, modelOutput, modelOutput.dtype));

        return predPrevSample.Tensor.MoveToOuterDisposeScope();
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseByAlphasCumprod(originalSamples, noise, timesteps);
}
