using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Singlestep DPM-Solver / DPM-Solver++ (Lu et al. 2022, arXiv 2206.00927 and 2211.01095), diffusers
/// <c>DPMSolverSinglestepScheduler</c>: steps are grouped (orders 1, 2, 3, 1, 2, 3, ...) and each group's update starts
/// from the sample at the group's first timestep.
/// </summary>
[DiffusersScheduler("DPM-Solver++ singlestep (orders 1-3); deterministic.")]
public sealed class DPMSolverSinglestepScheduler : SchedulerBase
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
        AlgorithmType = "dpmsolver++",
        SolverType = "midpoint",
        LowerOrderFinal = true,
        UseKarrasSigmas = false,
        FinalSigmasType = "zero",
        LambdaMinClipped = double.NegativeInfinity,
    };

    private readonly int _solverOrder;
    private readonly string _algorithmType;
    private readonly string _solverType;
    private readonly Tensor?[] _modelOutputs;
    private float[] _sigmaValues = [];
    private int[] _orderList = [];
    private bool _lowerOrderFinal;
    private Tensor? _groupSample;

    public DPMSolverSinglestepScheduler(SchedulerConfig? config = null) : base(Defaults, config, "variance_type")
    {
        _solverOrder = Config.SolverOrder!.Value;
        if (_solverOrder is < 1 or > 3)
            throw new ArgumentOutOfRangeException(nameof(config), _solverOrder, "solver_order must be 1, 2 or 3");
        _algorithmType = Config.AlgorithmType == "deis" ? "dpmsolver++" : Config.AlgorithmType!;
        if (_algorithmType is not ("dpmsolver++" or "dpmsolver"))
            throw new ArgumentException($"Unknown algorithm_type '{_algorithmType}' for the singlestep solver (expected dpmsolver++ or dpmsolver).");
        _solverType = Config.SolverType is "logrho" or "bh1" or "bh2" ? "midpoint" : Config.SolverType!;
        if (_solverType is not ("midpoint" or "heun"))
            throw new ArgumentException($"Unknown solver_type '{_solverType}' (expected midpoint or heun).");
        if (_algorithmType != "dpmsolver++" && Config.FinalSigmasType == "zero")
            throw new ArgumentException($"final_sigmas_type 'zero' is not supported with algorithm_type '{_algorithmType}'; use sigma_min.");
        _modelOutputs = new Tensor?[_solverOrder];
        _lowerOrderFinal = Config.LowerOrderFinal!.Value;
    }

    /// <summary>The solver order of each step: [1, 2, 1, 2, ...] (order 2) or [1, 2, 3, ...] (order 3), lower at the end.</summary>
    private int[] OrderList(int steps)
    {
        var order = _solverOrder;
        IEnumerable<int> Repeat(int[] pattern, int times) => Enumerable.Repeat(pattern, Math.Max(times, 0)).SelectMany(p => p);
        if (_lowerOrderFinal)
        {
            return order switch
            {
                3 => steps % 3 == 0 ? [.. Repeat([1, 2, 3], steps / 3 - 1), 1, 2, 1]
                    : steps % 3 == 1 ? [.. Repeat([1, 2, 3], steps / 3), 1]
                    : [.. Repeat([1, 2, 3], steps / 3), 1, 2],
                2 => steps % 2 == 0 ? [.. Repeat([1, 2], steps / 2 - 1), 1, 1] : [.. Repeat([1, 2], steps / 2), 1],
                _ => Enumerable.Repeat(1, steps).ToArray(),
            };
        }
        return order switch
        {
            3 => Repeat([1, 2, 3], steps / 3).ToArray(),
            2 => Repeat([1, 2], steps / 2).ToArray(),
            _ => Enumerable.Repeat(1, steps).ToArray(),
        };
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var logSigmas = Log32(trainSigmas);
        var lambdaT = TrainLambdas();
        var clippedIdx = lambdaT.Count(l => l < Config.LambdaMinClipped!.Value);
        var timesteps = NumpyCompat.Reverse(NumpyCompat.Round(NumpyCompat.Linspace(0, NumTrainTimesteps - 1 - clippedIdx, numInferenceSteps + 1)))[..^1];

        double[] sigmas;
        if (Config.UseKarrasSigmas == true)
        {
            sigmas = KarrasSigmas(trainSigmas[0], trainSigmas[^1], numInferenceSteps);
            timesteps = NumpyCompat.Round(sigmas.Select(s => SigmaToT(s, logSigmas)).ToArray());
        }
        else
        {
            sigmas = NumpyCompat.Interp(timesteps, trainSigmas);
        }
        double sigmaLast = Config.FinalSigmasType switch
        {
            "sigma_min" => trainSigmas[0],
            "zero" => 0.0,
            var other => throw new ArgumentException($"Unknown final_sigmas_type '{other}' (expected zero or sigma_min)."),
        };
        _sigmaValues = NumpyCompat.ToFloat32(sigmas.Append(sigmaLast));
        // diffusers forces lower_order_final when the steps do not divide into groups or the last sigma is zero
        if (!_lowerOrderFinal && (numInferenceSteps % _solverOrder != 0 || Config.FinalSigmasType == "zero")) _lowerOrderFinal = true;
        _orderList = OrderList(numInferenceSteps);
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(timesteps, ScalarType.Int64, _sigmaValues);
        ResetState();
    }

    private void ResetState()
    {
        for (var i = 0; i < _modelOutputs.Length; i++) Replace(ref _modelOutputs[i], null);
        Replace(ref _groupSample, null);
    }

    private (double Alpha, double Sigma, double Lambda) AlphaSigmaLambda(int index)
    {
        double sigma = _sigmaValues[index];
        var alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        var sigmaT = sigma * alpha;
        return (alpha, sigmaT, Math.Log(alpha) - Math.Log(sigmaT));
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        using var scope = torch.NewDisposeScope();

        var converted = ConvertModelOutput(modelOutput, sample, stepIndex);
        var oldest = _modelOutputs[0];
        for (var i = 0; i < _solverOrder - 1; i++) _modelOutputs[i] = _modelOutputs[i + 1];
        _modelOutputs[^1] = Keep(converted);
        oldest?.Dispose();

        var order = _orderList[stepIndex];
        while (_modelOutputs[^order] is null) order--;
        // a group starts at an order-1 step: later steps of the group update from this sample
        if (order == 1) Replace(ref _groupSample, sample);

        var prevSample = order switch
        {
            1 => FirstOrderUpdate(_modelOutputs[^1]!, _groupSample!, stepIndex),
            2 => SecondOrderUpdate(_groupSample!, stepIndex),
            _ => ThirdOrderUpdate(_groupSample!, stepIndex),
        };
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>Data prediction x0 (dpmsolver++) or noise prediction eps (dpmsolver), as in the multistep solver.</summary>
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, _) = AlphaSigmaLambda(stepIndex);
        var learnedRange = Config.VarianceType == "learned_range";
        if (_algorithmType == "dpmsolver++")
        {
            var x0Pred = PredictionType switch
            {
                "epsilon" => (sample - sigmaT * (learnedRange ? modelOutput[.., ..3] : modelOutput)) / alphaT,
                "sample" => modelOutput,
                _ => alphaT * sample - sigmaT * modelOutput,
            };
            return Config.Thresholding == true ? ThresholdSample(x0Pred) : x0Pred;
        }
        return PredictionType switch
        {
            "epsilon" => learnedRange ? modelOutput[.., ..3] : modelOutput,
            "sample" => (sample - alphaT * modelOutput) / sigmaT,
            _ => alphaT * modelOutput + sigmaT * sample,
        };
    }

    /// <summary>dpmsolver++: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0; dpmsolver: (alpha_t / alpha_s) x_s - sigma_t (e^h - 1) eps.</summary>
    private Tensor FirstOrderUpdate(Tensor m0, Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS, sigmaS, lambdaS) = AlphaSigmaLambda(stepIndex);
        var h = lambdaT - lambdaS;
        return _algorithmType == "dpmsolver++"
            ? sigmaT / sigmaS * sample - alphaT * (Math.Exp(-h) - 1.0) * m0
            : alphaT / alphaS * sample - sigmaT * (Math.Exp(h) - 1.0) * m0;
    }

    /// <summary>
    /// Singlestep second order from s1 (the group start) through s0 to t: h = lambda_t - lambda_s1, r0 = (lambda_s0 - lambda_s1) / h,
    /// D0 = m1, D1 = (m0 - m1) / r0; dpmsolver++ midpoint: x_t = (sigma_t / sigma_s1) x - alpha_t (e^{-h} - 1) (D0 + D1 / 2).
    /// </summary>
    private Tensor SecondOrderUpdate(Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (_, _, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (alphaS1, sigmaS1, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!;
        double h = lambdaT - lambdaS1, h0 = lambdaS0 - lambdaS1;
        var r0 = h0 / h;
        var d0 = m1;
        var d1 = 1.0 / r0 * (m0 - m1);
        var midpoint = _solverType == "midpoint";
        if (_algorithmType == "dpmsolver++")
            return midpoint
                ? sigmaT / sigmaS1 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0 - 0.5 * (alphaT * (Math.Exp(-h) - 1.0)) * d1
                : sigmaT / sigmaS1 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0 + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1;
        return midpoint
            ? alphaT / alphaS1 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0 - 0.5 * (sigmaT * (Math.Exp(h) - 1.0)) * d1
            : alphaT / alphaS1 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0 - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1;
    }

    /// <summary>
    /// Singlestep third order from s2: h = lambda_t - lambda_s2, r0 = (lambda_s0 - lambda_s2) / h, r1 = (lambda_s1 - lambda_s2) / h,
    /// D0 = m2, D1_0 = (m1 - m2) / r1, D1_1 = (m0 - m2) / r0, D1 = (r0 D1_0 - r1 D1_1) / (r0 - r1), D2 = 2 (D1_1 - D1_0) / (r0 - r1).
    /// </summary>
    private Tensor ThirdOrderUpdate(Tensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (_, _, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (_, _, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        var (alphaS2, sigmaS2, lambdaS2) = AlphaSigmaLambda(stepIndex - 2);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!, m2 = _modelOutputs[^3]!;
        double h = lambdaT - lambdaS2, h0 = lambdaS0 - lambdaS2, h1 = lambdaS1 - lambdaS2;
        double r0 = h0 / h, r1 = h1 / h;
        var d0 = m2;
        var d10 = 1.0 / r1 * (m1 - m2);
        var d11 = 1.0 / r0 * (m0 - m2);
        var d1 = (r0 * d10 - r1 * d11) / (r0 - r1);
        var d2 = 2.0 * (d11 - d10) / (r0 - r1);
        var midpoint = _solverType == "midpoint";
        if (_algorithmType == "dpmsolver++")
            return midpoint
                ? sigmaT / sigmaS2 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0 + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d11
                : sigmaT / sigmaS2 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0 + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1
                    - alphaT * ((Math.Exp(-h) - 1.0 + h) / (h * h) - 0.5) * d2;
        return midpoint
            ? alphaT / alphaS2 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0 - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d11
            : alphaT / alphaS2 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0 - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1
                - sigmaT * ((Math.Exp(h) - 1.0 - h) / (h * h) - 0.5) * d2;
    }

    /// <summary>x_t = alpha_t x_0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseByVpSigma(originalSamples, noise, timesteps);

    protected override void DisposeState() => ResetState();
}
