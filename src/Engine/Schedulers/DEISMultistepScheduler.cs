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
public sealed class DEISMultistepScheduler : SchedulerBase
{
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.0001,
        BetaEnd = 0.02,
        BetaSchedule = "linear",
        SolverOrder = 2,
        PredictionType = "epsilon",
        Thresholding = false,
        DynamicThresholdingRatio = 0.995,
        SampleMaxValue = 1.0,
        AlgorithmType = "deis",
        SolverType = "logrho",
        LowerOrderFinal = true,
        UseKarrasSigmas = false,
        TimestepSpacing = "linspace",
        StepsOffset = 0,
    };

    private readonly int _solverOrder;
    private readonly Tensor?[] _modelOutputs;
    private float[] _sigmaValues = [];
    private int _lowerOrderNums;

    public DEISMultistepScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        _solverOrder = Config.SolverOrder!.Value;
        if (_solverOrder is < 1 or > 3)
            throw new ArgumentOutOfRangeException(nameof(config), _solverOrder, "solver_order must be 1, 2 or 3");
        // diffusers maps the other solvers' names to deis / logrho
        if (Config.AlgorithmType is not ("deis" or "dpmsolver" or "dpmsolver++"))
            throw new ArgumentException($"Unknown algorithm_type '{Config.AlgorithmType}' for DEIS (expected deis).");
        if (Config.SolverType is not ("logrho" or "midpoint" or "heun" or "bh1" or "bh2"))
            throw new ArgumentException($"Unknown solver_type '{Config.SolverType}' for DEIS (expected logrho).");
        _modelOutputs = new Tensor?[_solverOrder];
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var t = NumTrainTimesteps;
        var timesteps = (Config.TimestepSpacing ?? "linspace") switch
        {
            "linspace" => NumpyCompat.Reverse(NumpyCompat.Round(NumpyCompat.Linspace(0, t - 1, numInferenceSteps + 1)))[..^1],
            "leading" => Enumerable.Range(0, numInferenceSteps + 1).Reverse().Take(numInferenceSteps)
                .Select(i => (double)(i * (t / (numInferenceSteps + 1)) + Config.StepsOffset!.Value)).ToArray(),
            "trailing" => NumpyCompat.Round(NumpyCompat.Arange(t, 0, -(t / (double)numInferenceSteps))).Select(v => v - 1).ToArray(),
            var other => throw new ArgumentException($"Unknown timestep_spacing '{other}' (expected linspace, leading or trailing)."),
        };
        var trainSigmas = TrainSigmas();
        if (Config.UseKarrasSigmas == true)
        {
            var logSigmas = Log32(trainSigmas);
            var sigmas = KarrasSigmas(trainSigmas[0], trainSigmas[^1], numInferenceSteps);
            timesteps = NumpyCompat.Round(sigmas.Select(s => SigmaToT(s, logSigmas)).ToArray());
            _sigmaValues = NumpyCompat.ToFloat32(sigmas.Append(sigmas[^1]));
        }
        else
        {
            // DEIS ends at sigma_min (alphas_cumprod[0]), not at zero
            _sigmaValues = NumpyCompat.ToFloat32(NumpyCompat.Interp(timesteps, trainSigmas).Append(trainSigmas[0]));
        }
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(timesteps, ScalarType.Int64, _sigmaValues);
        ResetState();
    }

    private void ResetState()
    {
        for (var i = 0; i < _modelOutputs.Length; i++) Replace(ref _modelOutputs[i], null);
        _lowerOrderNums = 0;
    }

    private (double Alpha, double Sigma) AlphaSigma(int index)
    {
        double sigma = _sigmaValues[index];
        var alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        return (alpha, sigma * alpha);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        var count = TimestepValues.Count;
        using var scope = torch.NewDisposeScope();
        var lowerOrderFinal = stepIndex == count - 1 && Config.LowerOrderFinal == true && count < 15;
        var lowerOrderSecond = stepIndex == count - 2 && Config.LowerOrderFinal == true && count < 15;

        var converted = ConvertModelOutput(modelOutput, sample, stepIndex);
        var oldest = _modelOutputs[0];
        for (var i = 0; i < _solverOrder - 1; i++) _modelOutputs[i] = _modelOutputs[i + 1];
        _modelOutputs[^1] = Keep(converted);
        oldest?.Dispose();

        Tensor prevSample;
        if (_solverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal)
            prevSample = FirstOrderUpdate(converted, sample, stepIndex);
        else if (_solverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond)
            prevSample = SecondOrderUpdate(sample, stepIndex);
        else
            prevSample = ThirdOrderUpdate(sample, stepIndex);

        if (_lowerOrderNums < _solverOrder) _lowerOrderNums++;
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x0 from the prediction type (thresholded if asked), then DEIS works on eps = (x_t - alpha_t x0) / sigma_t.</summary>
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex);
        var x0Pred = PredictionType switch
        {
            "epsilon" => (sample - sigmaT * modelOutput) / alphaT,
            "sample" => modelOutput,
            _ => alphaT * sample - sigmaT * modelOutput,
        };
        if (Config.Thresholding == true) x0Pred = ThresholdSample(x0Pred);
        return (sample - alphaT * x0Pred) / sigmaT;
    }

    /// <summary>First order (= DDIM): x_t = (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps, h = lambda_t - lambda_s.</summary>
    private Tensor FirstOrderUpdate(Tensor m0, Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex + 1);
        var (alphaS, sigmaS) = AlphaSigma(stepIndex);
        var h = (Math.Log(alphaT) - Math.Log(sigmaT)) - (Math.Log(alphaS) - Math.Log(sigmaS));
        return alphaT / alphaS * sample - sigmaT * (Math.Exp(h) - 1.0) * m0;
    }

    /// <summary>
    /// Second order: x_t = alpha_t (x / alpha_s0 + c1 m0 + c2 m1) with c_k the integrals over rho of the Lagrange basis
    /// in log(rho): ind(t, b, c) = t (-log c + log t - 1) / (log b - log c), c1 = ind(rho_t, rho_s0, rho_s1) - ind(rho_s0, rho_s0, rho_s1).
    /// </summary>
    private Tensor SecondOrderUpdate(Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex + 1);
        var (alphaS0, sigmaS0) = AlphaSigma(stepIndex);
        var (alphaS1, sigmaS1) = AlphaSigma(stepIndex - 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!;
        double rhoT = sigmaT / alphaT, rhoS0 = sigmaS0 / alphaS0, rhoS1 = sigmaS1 / alphaS1;

        static double Ind(double t, double b, double c) => t * (-Math.Log(c) + Math.Log(t) - 1) / (Math.Log(b) - Math.Log(c));

        var coef1 = Ind(rhoT, rhoS0, rhoS1) - Ind(rhoS0, rhoS0, rhoS1);
        var coef2 = Ind(rhoT, rhoS1, rhoS0) - Ind(rhoS0, rhoS1, rhoS0);
        return alphaT * (sample / alphaS0 + coef1 * m0 + coef2 * m1);
    }

    /// <summary>Third order: the same with the quadratic Lagrange basis in log(rho) over the last three outputs.</summary>
    private Tensor ThirdOrderUpdate(Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT) = AlphaSigma(stepIndex + 1);
        var (alphaS0, sigmaS0) = AlphaSigma(stepIndex);
        var (alphaS1, sigmaS1) = AlphaSigma(stepIndex - 1);
        var (alphaS2, sigmaS2) = AlphaSigma(stepIndex - 2);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!, m2 = _modelOutputs[^3]!;
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

    /// <summary>x_t = alpha_t x_0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseByVpSigma(originalSamples, noise, timesteps);

    protected override void DisposeState() => ResetState();
}
