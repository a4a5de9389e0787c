using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Denoising Diffusion Implicit Models (Song et al. 2020, arXiv 2010.02502), diffusers <c>DDIMScheduler</c>.
/// Deterministic for eta = 0; eta &gt; 0 adds DDPM-like noise (eta = 1 is DDPM's posterior variance).
/// </summary>
[DiffusersScheduler("DDIM: deterministic implicit sampler (eta > 0 adds noise); the SD 2.1 default.")]
[SchedulerAlias("DDIM")]
public sealed class DDIMScheduler : SchedulerBase
{
    /// <summary>diffusers 0.29 defaults, plus eta (a step argument there).</summary>
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.0001,
        BetaEnd = 0.02,
        BetaSchedule = "linear",
        ClipSample = true,
        SetAlphaToOne = true,
        StepsOffset = 0,
        PredictionType = "epsilon",
        Thresholding = false,
        DynamicThresholdingRatio = 0.995,
        ClipSampleRange = 1.0,
        SampleMaxValue = 1.0,
        TimestepSpacing = "leading",
        RescaleBetasZeroSnr = false,
        Eta = 0.0,
    };

    private readonly double _finalAlphaCumprod;

    public DDIMScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        Eta = Config.Eta!.Value;
        if (Eta < 0) throw new ArgumentOutOfRangeException(nameof(config), Eta, "eta must be >= 0");
        // For the final step there is no previous alpha: 1 (set_alpha_to_one) or alphas_cumprod[0].
        _finalAlphaCumprod = Config.SetAlphaToOne!.Value ? 1.0 : AlphasCumprodValues[0];
    }

    /// <summary>Weight of the noise added per step (0 = deterministic DDIM).</summary>
    public double Eta { get; }

    public override bool IsStochastic => Eta > 0;

    public override void SetTimesteps(int numInferenceSteps)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps,
                $"must be in 1..num_train_timesteps ({NumTrainTimesteps})");
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(SpacedTimesteps(Config, NumTrainTimesteps, numInferenceSteps), ScalarType.Int64, sigmas: null);
    }

    /// <summary>The leading / trailing / linspace integer timesteps of DDIM, DDPM (descending).</summary>
    internal static double[] SpacedTimesteps(SchedulerConfig config, int numTrainTimesteps, int n)
    {
        var spacing = config.TimestepSpacing ?? "leading";
        switch (spacing)
        {
            case "linspace":
                return NumpyCompat.Reverse(NumpyCompat.Round(NumpyCompat.Linspace(0, numTrainTimesteps - 1, n)));
            case "leading":
            {
                var stepRatio = numTrainTimesteps / n;
                var offset = config.StepsOffset ?? 0;
                return Enumerable.Range(0, n).Reverse().Select(i => (double)(i * stepRatio + offset)).ToArray();
            }
            case "trailing":
            {
                var stepRatio = numTrainTimesteps / (double)n;
                return NumpyCompat.Round(NumpyCompat.Arange(numTrainTimesteps, 0, -stepRatio))
                    .Select(t => t - 1)
                    .ToArray();
            }
            default:
                throw new ArgumentException(
                    $"Unknown timestep_spacing '{spacing}' (expected leading, trailing or linspace).");
        }
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        if (NumInferenceSteps is not { } n)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        using var scope = torch.NewDisposeScope();
        var t = (int)timestep;
        ScalarSafeTensor x = sample, output = modelOutput;

        // 1. get previous step value (=t-1)
        var prevTimestep = t - NumTrainTimesteps / n;

        // 2. compute alphas, betas
        double alphaProdT = AlphasCumprodValues[t];
        var alphaProdTPrev = prevTimestep >= 0 ? AlphasCumprodValues[prevTimestep] : _finalAlphaCumprod;
        var betaProdT = 1 - alphaProdT;

        // 3. compute predicted original sample from predicted noise, "predicted x_0" of formula (12):
        //    x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)
        ScalarSafeTensor predOriginalSample, predEpsilon;
        switch (PredictionType)
        {
            case "epsilon":
                predOriginalSample = (x - Math.Sqrt(betaProdT) * output) / Math.Sqrt(alphaProdT);
                predEpsilon = output;
                break;
            case "sample":
                predOriginalSample = output;
                predEpsilon = (x - Math.Sqrt(alphaProdT) * predOriginalSample) / Math.Sqrt(betaProdT);
                break;
            // v_prediction (Imagen Video 2.4): x0 = sqrt(a_t) x_t - sqrt(1 - a_t) v, eps = sqrt(a_t)
            // v + sqrt(1 - a_t) x_t
            default:
                predOriginalSample = Math.Sqrt(alphaProdT) * x - Math.Sqrt(betaProdT) * output;
                predEpsilon = Math.Sqrt(alphaProdT) * output + Math.Sqrt(betaProdT) * x;
                break;
        }

        // 4. Clip or threshold "predicted x_0"
        if (Config.Thresholding == true)
            predOriginalSample = ThresholdSample(predOriginalSample);
        else if (Config.ClipSample == true)
            predOriginalSample = predOriginalSample.Clamp(
                -Config.ClipSampleRange!.Value, Config.ClipSampleRange!.Value);

        // 5. compute variance "sigma_t(eta)", formula (16):
        //    sigma_t = sqrt((1 - a_{t-1}) / (1 - a_t)) * sqrt(1 - a_t / a_{t-1})
        var variance = (1 - alphaProdTPrev) / betaProdT * (1 - alphaProdT / alphaProdTPrev);
        var stdDevT = Eta * Math.Sqrt(variance);

        // 6. compute "direction pointing to x_t" of formula (12): sqrt(1 - a_{t-1} - sigma_t^2) * eps
        var predSampleDirection = Math.Sqrt(1 - alphaProdTPrev - stdDevT * stdDevT) * predEpsilon;

        // 7. compute x_{t-1} without "random noise" of formula (12): sqrt(a_{t-1}) x0 + direction
        var prevSample = Math.Sqrt(alphaProdTPrev) * predOriginalSample + predSampleDirection;

        // 8. add sigma_t * z for eta > 0 (the noise is drawn only then, like diffusers)
        if (Eta > 0)
            prevSample = prevSample + stdDevT * (ScalarSafeTensor)DrawNoise(noise, modelOutput, modelOutput.dtype);

        return prevSample.Tensor.MoveToOuterDisposeScope();
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseByAlphasCumprod(originalSamples, noise, timesteps);
}
