using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Euler sampler of Karras et al. 2022 (arXiv 2206.00364, Algorithm 2 with s_churn = 0), diffusers
/// <c>EulerDiscreteScheduler</c>. Deterministic, though it draws (and discards) one noise tensor per step as diffusers
/// does, which keeps a shared generator's stream aligned.
/// </summary>
[DiffusersScheduler("Euler (Karras et al. Algorithm 2): simple, deterministic first-order sampler.")]
[SchedulerAlias("Euler")]
[SchedulerAlias("Euler Karras", """{"use_karras_sigmas": true}""")]
public sealed class EulerDiscreteScheduler : SigmaSchedulerBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.0001, betaEnd: 0.02) with
    {
        InterpolationType = "linear",
        UseKarrasSigmas = false,
        TimestepType = "discrete",
        RescaleBetasZeroSnr = false,
        FinalSigmasType = "zero",
    };

    public EulerDiscreteScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, extraKeys: ["sigma_min", "sigma_max"])
    {
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var logSigmas = Log32(trainSigmas);
        var timesteps = SpacedTimesteps(numInferenceSteps);

        double[] sigmas = Config.InterpolationType switch
        {
            "linear" => NumpyCompat.Interp(timesteps, trainSigmas),
            // diffusers: torch.linspace(log(sigmas[-1]), log(sigmas[0]), n + 1).exp() (float32)
            "log_linear" => LogLinearSigmas(trainSigmas, numInferenceSteps),
            var other =>
                throw new ArgumentException($"Unknown interpolation_type '{other}' (expected linear or log_linear)."),
        };
        if (Config.UseKarrasSigmas == true)
        {
            sigmas = SigmaConversions.KarrasSigmas(
                Config.SigmaMin ?? sigmas[^1], Config.SigmaMax ?? sigmas[0], numInferenceSteps);
            timesteps = sigmas.Select(s => (double)(float)SigmaConversions.SigmaToT(s, logSigmas)).ToArray();
        }
        var sigmaLast = SigmaConversions.FinalSigma(Config.FinalSigmasType, trainSigmas[0]);
        SigmaValues = NumpyCompat.ToFloat32(sigmas.Append(sigmaLast));
        if (Config.TimestepType == "continuous" && PredictionType == "v_prediction")
            timesteps = SigmaValues[..^1].Select(s => (double)(0.25f * MathF.Log(s))).ToArray();
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(timesteps, ScalarType.Float32, SigmaValues);
    }

    private static double[] LogLinearSigmas(float[] trainSigmas, int n)
    {
        using var scope = torch.NewDisposeScope();
        return torch.linspace(Math.Log(trainSigmas[^1]), Math.Log(trainSigmas[0]), n + 1, ScalarType.Float32).exp()
            .to(ScalarType.Float64).data<double>().ToArray();
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        ScalarSafeTensor x = sample.to(ScalarType.Float32);
        double sigma = SigmaValues[stepIndex];

        // gamma = min(s_churn / (N - 1), sqrt(2) - 1) = 0 with the default s_churn = 0, so sigma_hat = sigma and the
        // "churn" noise eps * sqrt(sigma_hat^2 - sigma^2) is zero; diffusers draws it anyway.
        DrawNoise(noise, modelOutput, modelOutput.dtype);
        var sigmaHat = sigma;

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(modelOutput, x, sigma);

        // 2. Convert to an ODE derivative: d = (x - x0) / sigma_hat
        var derivative = (x - predOriginalSample) / sigmaHat;

        // 3. Euler step: x_{i+1} = x + d (sigma_{i+1} - sigma_hat)
        var dt = SigmaValues[stepIndex + 1] - sigmaHat;
        var prevSample = x + derivative * dt;

        StepIndex = stepIndex + 1;
        return prevSample.Tensor.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }
}
