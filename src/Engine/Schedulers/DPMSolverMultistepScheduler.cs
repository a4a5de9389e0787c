using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// DPM-Solver / DPM-Solver++ multistep (Lu et al. 2022, arXiv 2206.00927 and 2211.01095), diffusers
/// <c>DPMSolverMultistepScheduler</c>: orders 1-3, <c>dpmsolver++</c> (data prediction) and <c>sde-dpmsolver++</c>
/// (stochastic, orders 1-2), optional Karras or Lu lambda spacing.
/// </summary>
[DiffusersScheduler("DPM-Solver++ multistep (orders 1-3); sde-dpmsolver++ adds noise; fast 20-25 step sampler.")]
[SchedulerAlias("DPM++ 2M")]
[SchedulerAlias("DPM++ 2M Karras", """{"use_karras_sigmas": true}""")]
[SchedulerAlias("DPM++ 2M SDE", """{"algorithm_type": "sde-dpmsolver++"}""")]
[SchedulerAlias("DPM++ 2M SDE Karras", """{"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true}""")]
// A1111's "DPM++ SDE" is k-diffusion's singlestep dpmpp_sde with Brownian-tree noise (diffusers' DPMSolverSDEScheduler,
// which needs torchsde). The closest scheduler here: the same DPM-Solver++ SDE family, second order, as a multistep.
[SchedulerAlias("DPM++ SDE", """{"algorithm_type": "sde-dpmsolver++"}""")]
[SchedulerAlias("DPM++ SDE Karras", """{"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": true}""")]
public sealed class DPMSolverMultistepScheduler : MultistepSolverBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults with
    {
        AlgorithmType = "dpmsolver++",
        SolverType = "midpoint",
        EulerAtFinal = false,
        UseLuLambdas = false,
        FinalSigmasType = "zero",
        LambdaMinClipped = double.NegativeInfinity,
        TimestepSpacing = "linspace",
        StepsOffset = 0,
        RescaleBetasZeroSnr = false,
    };

    private readonly string _algorithmType;
    private readonly string _solverType;

    public DPMSolverMultistepScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, upToThirdOrder: true, "variance_type")
    {
        // diffusers maps the other solvers' names onto this one's.
        _algorithmType = Config.AlgorithmType == "deis" ? "dpmsolver++" : Config.AlgorithmType!;
        if (_algorithmType is not ("dpmsolver++" or "sde-dpmsolver++" or "dpmsolver" or "sde-dpmsolver"))
            throw new ArgumentException(
                $"Unknown algorithm_type '{_algorithmType}' (expected " +
                $"dpmsolver++, sde-dpmsolver++, dpmsolver or sde-dpmsolver).");
        _solverType = Config.SolverType is "logrho" or "bh1" or "bh2" ? "midpoint" : Config.SolverType!;
        if (_solverType is not ("midpoint" or "heun"))
            throw new ArgumentException($"Unknown solver_type '{_solverType}' (expected midpoint or heun).");
        if (_algorithmType is "dpmsolver" or "sde-dpmsolver" && Config.FinalSigmasType == "zero")
            throw new ArgumentException(
                $"final_sigmas_type 'zero' is not supported with algorithm_type '{_algorithmType}'; use sigma_min.");
        if (_algorithmType.StartsWith("sde-", StringComparison.Ordinal) && SolverOrder == 3)
            throw new NotSupportedException(
                $"algorithm_type '{_algorithmType}' has no third-order " +
                $"update (diffusers neither); use solver_order 1 or 2.");
    }

    public override bool IsStochastic => _algorithmType.StartsWith("sde-", StringComparison.Ordinal);

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var (timesteps, sigmas) = SolverSchedule(numInferenceSteps, trainSigmas);
        var sigmaLast = SigmaConversions.FinalSigma(Config.FinalSigmasType, trainSigmas[0]);
        SetSolverSchedule(numInferenceSteps, timesteps, sigmas.Append(sigmaLast));
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        using var scope = torch.NewDisposeScope();

        // 1. convert the model output to what the solver integrates (x0 or eps) and push it onto the history
        var order = MultistepOrder(stepIndex);
        var converted = ConvertModelOutput(modelOutput, sample, stepIndex);
        PushModelOutput(converted);

        var x = sample.to(ScalarType.Float32);
        Tensor? stepNoise = IsStochastic ? DrawNoise(noise, modelOutput, ScalarType.Float32) : null;

        // 2. the multistep update of the order this step runs at
        var prevSample = order switch
        {
            1 => FirstOrderUpdate(converted, x, stepNoise, stepIndex),
            2 => SecondOrderUpdate(x, stepNoise, stepIndex),
            _ => ThirdOrderUpdate(x, stepIndex),
        };

        CountStep();
        StepIndex = stepIndex + 1;
        return prevSample.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// DPM-Solver++ solves for the data prediction x0 (dpmsolver++: x0 = (x_t - sigma_t eps) / alpha_t), DPM-Solver for
    /// the noise prediction eps; v-prediction: x0 = alpha_t x_t - sigma_t v, eps = alpha_t v + sigma_t x_t.
    /// </summary>
    private Tensor ConvertModelOutput(ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex)
    {
        var learnedVariance = Config.VarianceType is "learned" or "learned_range";
        if (_algorithmType is "dpmsolver++" or "sde-dpmsolver++")
            return PredictX0(modelOutput, sample, stepIndex, learnedVariance);
        ScalarSafeTensor epsilon = PredictEpsilon(modelOutput, sample, stepIndex, learnedVariance);
        if (Config.Thresholding == true)
        {
            var (alphaT, sigmaT, _) = AlphaSigmaLambda(stepIndex);
            ScalarSafeTensor x0Pred = ThresholdSample((sample - sigmaT * epsilon) / alphaT);
            epsilon = (sample - alphaT * x0Pred) / sigmaT;
        }
        return epsilon;
    }

    /// <summary>
    /// First order (DDIM-equivalent), h = lambda_t - lambda_s:
    /// dpmsolver++: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0;
    /// sde-dpmsolver++: x_t = (sigma_t / sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) x0 + sigma_t sqrt(1 - e^{-2h}) z.
    /// </summary>
    private Tensor FirstOrderUpdate(ScalarSafeTensor m0, ScalarSafeTensor sample, Tensor? noise, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS, sigmaS, lambdaS) = AlphaSigmaLambda(stepIndex);
        var h = lambdaT - lambdaS;
        return _algorithmType switch
        {
            "dpmsolver++" => sigmaT / sigmaS * sample - alphaT * (Math.Exp(-h) - 1.0) * m0,
            "dpmsolver" => alphaT / alphaS * sample - sigmaT * (Math.Exp(h) - 1.0) * m0,
            "sde-dpmsolver++" => sigmaT / sigmaS * Math.Exp(-h) * sample
                + alphaT * (1 - Math.Exp(-2.0 * h)) * m0
                + sigmaT * Math.Sqrt(1.0 - Math.Exp(-2 * h)) * (ScalarSafeTensor)noise!,
            _ => alphaT / alphaS * sample
                - 2.0 * (sigmaT * (Math.Exp(h) - 1.0)) * m0
                + sigmaT * Math.Sqrt(Math.Exp(2 * h) - 1.0) * (ScalarSafeTensor)noise!,
        };
    }

    /// <summary>
    /// Multistep second order with h = lambda_t - lambda_s0, r0 = h_0 / h, D0 = m0, D1 = (m0 - m1) / r0;
    /// dpmsolver++ midpoint: x_t = (sigma_t / sigma_s0) x - alpha_t (e^{-h} - 1) D0 - 0.5 alpha_t (e^{-h} - 1) D1.
    /// </summary>
    private Tensor SecondOrderUpdate(ScalarSafeTensor sample, Tensor? noise, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS0, sigmaS0, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (_, _, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!;
        double h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1;
        var r0 = h0 / h;
        var d0 = m0;
        var d1 = 1.0 / r0 * (m0 - m1);
        var midpoint = _solverType == "midpoint";
        switch (_algorithmType)
        {
            case "dpmsolver++":
                return midpoint
                    ? sigmaT / sigmaS0 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                        - 0.5 * (alphaT * (Math.Exp(-h) - 1.0)) * d1
                    : sigmaT / sigmaS0 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                        + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1;
            case "dpmsolver":
                return midpoint
                    ? alphaT / alphaS0 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                        - 0.5 * (sigmaT * (Math.Exp(h) - 1.0)) * d1
                    : alphaT / alphaS0 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                        - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1;
            case "sde-dpmsolver++":
            {
                var noiseTerm = sigmaT * Math.Sqrt(1.0 - Math.Exp(-2 * h)) * (ScalarSafeTensor)noise!;
                return midpoint
                    ? sigmaT / sigmaS0 * Math.Exp(-h) * sample + alphaT * (1 - Math.Exp(-2.0 * h)) * d0
                        + 0.5 * (alphaT * (1 - Math.Exp(-2.0 * h))) * d1 + noiseTerm
                    : sigmaT / sigmaS0 * Math.Exp(-h) * sample + alphaT * (1 - Math.Exp(-2.0 * h)) * d0
                        + alphaT * ((1.0 - Math.Exp(-2.0 * h)) / (-2.0 * h) + 1.0) * d1 + noiseTerm;
            }
            default: // sde-dpmsolver
            {
                var noiseTerm = sigmaT * Math.Sqrt(Math.Exp(2 * h) - 1.0) * (ScalarSafeTensor)noise!;
                return midpoint
                    ? alphaT / alphaS0 * sample - 2.0 * (sigmaT * (Math.Exp(h) - 1.0)) * d0
                        - sigmaT * (Math.Exp(h) - 1.0) * d1 + noiseTerm
                    : alphaT / alphaS0 * sample - 2.0 * (sigmaT * (Math.Exp(h) - 1.0)) * d0
                        - 2.0 * (sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0)) * d1 + noiseTerm;
            }
        }
    }

    /// <summary>
    /// Multistep third order: r0 = h_0 / h, r1 = h_1 / h, D1_0 = (m0 - m1) / r0, D1_1 = (m1 - m2) / r1,
    /// D1 = D1_0 + r0 / (r0 + r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1) / (r0 + r1);
    /// dpmsolver++: x_t = (sigma_t / sigma_s0) x - alpha_t (e^{-h} - 1) D0 + alpha_t ((e^{-h} - 1) / h + 1) D1
    /// - alpha_t ((e^{-h} - 1 + h) / h^2 - 0.5) D2.
    /// </summary>
    private Tensor ThirdOrderUpdate(ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS0, sigmaS0, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (_, _, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        var (_, _, lambdaS2) = AlphaSigmaLambda(stepIndex - 2);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!, m2 = ModelOutputs[^3]!;
        double h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1, h1 = lambdaS1 - lambdaS2;
        double r0 = h0 / h, r1 = h1 / h;
        var d0 = m0;
        var d10 = 1.0 / r0 * (m0 - m1);
        var d11 = 1.0 / r1 * (m1 - m2);
        var d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
        var d2 = 1.0 / (r0 + r1) * (d10 - d11);
        return _algorithmType == "dpmsolver++"
            ? sigmaT / sigmaS0 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1
                - alphaT * ((Math.Exp(-h) - 1.0 + h) / (h * h) - 0.5) * d2
            : alphaT / alphaS0 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1
                - sigmaT * ((Math.Exp(h) - 1.0 - h) / (h * h) - 0.5) * d2;
    }
}
