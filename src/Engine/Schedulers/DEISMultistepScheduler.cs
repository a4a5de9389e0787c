using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Diffusion Exponential Integrator Sampler (Zhang &amp; Chen 2022, arXiv 2204.13902), diffusers
/// <c>DEISMultistepScheduler</c>: log-rho multistep, orders 1-3, integrating the noise prediction exactly in
/// rho = sigma / alpha with polynomial extrapolation of eps in log(rho).
/// </summary>
[DiffusersScheduler("DEIS: exponential-integrator multistep (orders 1-3); deterministic.")]
[SchedulerAlias("DEIS")]
public sealed class DEISMultistepScheduler : MultistepSolverBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults with
    {
        AlgorithmType = "deis",
        SolverType = "logrho",
        TimestepSpacing = "linspace",
        StepsOffset = 0,
    };

    public DEISMultistepScheduler(SchedulerConfig? config = null) : base(Defaults, config, upToThirdOrder: true)
    {
        // diffusers maps the other solvers' names to deis / logrho
        if (Config.AlgorithmType is not ("deis" or "dpmsolver" or "dpmsolver++"))
            throw new ArgumentException($"Unknown algorithm_type '{Config.AlgorithmType}' for DEIS (expected deis).");
        if (Config.SolverType is not ("logrho" or "midpoint" or "heun" or "bh1" or "bh2"))
            throw new ArgumentException($"Unknown solver_type '{Config.SolverType}' for DEIS (expected logrho).");
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var (timesteps, sigmas) = SolverSchedule(numInferenceSteps, trainSigmas);
        // DEIS ends at sigma_min: the last Karras sigma, or the smallest training sigma
        // (alphas_cumprod[0]), not at zero
        var sigmaLast = Config.UseKarrasSigmas == true ? sigmas[^1] : trainSigmas[0];
        SetSolverSchedule(numInferenceSteps, timesteps, sigmas.Append(sigmaLast));
    }

    private (double Alpha, double Sigma) AlphaSigma(int index)
    {
        var (alpha, sigma, _) = AlphaSigmaLambda(index);
        return (alpha, sigma);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        using var scope = torch.NewDisposeScope();

        // 1. convert the model output to eps and push it onto the history
        var order = MultistepOrder(stepIndex);
        var converted = ConvertModelOutput(modelOutput, sample, stepIndex);
        PushModelOutput(converted);

        // 2. the log-rho multistep update of the order this step runs at
        var prevSample = order switch
        {
            1 => FirstOrderUpdate(converted, sample, stepIndex),
            2 => SecondOrderUpdate(sample, stepIndex),
            _ => ThirdOrderUpdate(sample, stepIndex),
        };

        CountStep();
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x0 from the prediction type (thresholded if asked), then DEIS works on eps = (x_t - alpha_t x0)
    /// / sigma_t.</summary>
    private Tensor ConvertModelOutput(ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex);
        ScalarSafeTensor x0Pred = PredictX0(modelOutput, sample, stepIndex);
        return (sample - alphaT * x0Pred) / sigmaT;
    }

    /// <summary>First order (= DDIM): x_t = (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps, h = lambda_t
    /// - lambda_s.</summary>
    private Tensor FirstOrderUpdate(ScalarSafeTensor m0, ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS, _, lambdaS) = AlphaSigmaLambda(stepIndex);
        var h = lambdaT - lambdaS;
        return alphaT / alphaS * sample - sigmaT * (Math.Exp(h) - 1.0) * m0;
    }

    /// <summary>
    /// Second order: x_t = alpha_t (x / alpha_s0 + c1 m0 + c2 m1) with c_k the integrals over rho of the Lagrange basis
    /// in log(rho): ind(t, b, c) = t (-log c + log t - 1) / (log b - log c), c1 = ind(rho_t, rho_s0, rho_s1) -
    /// ind(rho_s0, rho_s0, rho_s1).
    /// </summary>
    private Tensor SecondOrderUpdate(ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex + 1);
        var (alphaS0, sigmaS0) = AlphaSigma(stepIndex);
        var (alphaS1, sigmaS1) = AlphaSigma(stepIndex - 1);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!;
        double rhoT = sigmaT / alphaT, rhoS0 = sigmaS0 / alphaS0, rhoS1 = sigmaS1 / alphaS1;

        static double Ind(double t, double b, double c) =>
            t * (-Math.Log(c) + Math.Log(t) - 1) / (Math.Log(b) - Math.Log(c));

        var coef1 = Ind(rhoT, rhoS0, rhoS1) - Ind(rhoS0, rhoS0, rhoS1);
        var coef2 = Ind(rhoT, rhoS1, rhoS0) - Ind(rhoS0, rhoS1, rhoS0);
        return alphaT * (sample / alphaS0 + coef1 * m0 + coef2 * m1);
    }

    /// <summary>Third order: the same with the quadratic Lagrange basis in log(rho) over the last
    /// three outputs.</summary>
    private Tensor ThirdOrderUpdate(ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex + 1);
        var (alphaS0, sigmaS0) = AlphaSigma(stepIndex);
        var (alphaS1, sigmaS1) = AlphaSigma(stepIndex - 1);
        var (alphaS2, sigmaS2) = AlphaSigma(stepIndex - 2);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!, m2 = ModelOutputs[^3]!;
        double rhoT = sigmaT / alphaT, rhoS0 = sigmaS0 / alphaS0, rhoS1 = sigmaS1 / alphaS1, rhoS2 = sigmaS2 / alphaS2;

        static double Ind(double t, double b, double c, double d)
        {
            double lt = Math.Log(t), lb = Math.Log(b), lc = Math.Log(c), ld = Math.Log(d);
            var numerator = t * (lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2);
            var denominator = (lb - lc) * (lb - ld);
            return numerator / denominator;
        }

        var coef1 = Ind(rhoT, rhoS0, rhoS1, rhoS2) - Ind(rhoS0, rhoS0, rhoS1, rhoS2);
        var coef2 = Ind(rhoT, rhoS1, rhoS2, rhoS0) - Ind(rhoS0, rhoS1, rhoS2, rhoS0);
        var coef3 = Ind(rhoT, rhoS2, rhoS0, rhoS1) - Ind(rhoS0, rhoS2, rhoS0, rhoS1);
        return alphaT * (sample / alphaS0 + coef1 * m0 + coef2 * m1 + coef3 * m2);
    }
}
