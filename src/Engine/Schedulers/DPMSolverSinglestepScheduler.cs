using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Singlestep DPM-Solver / DPM-Solver++ (Lu et al. 2022, arXiv 2206.00927 and 2211.01095), diffusers
/// <c>DPMSolverSinglestepScheduler</c>: steps are grouped (orders 1, 2, 3, 1, 2, 3, ...) and each group's update starts
/// from the sample at the group's first timestep.
/// </summary>
[DiffusersScheduler("DPM-Solver++ singlestep (orders 1-3); deterministic.")]
public sealed class DPMSolverSinglestepScheduler : MultistepSolverBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults with
    {
        AlgorithmType = "dpmsolver++",
        SolverType = "midpoint",
        FinalSigmasType = "zero",
        LambdaMinClipped = double.NegativeInfinity,
    };

    private readonly string _algorithmType;
    private readonly string _solverType;
    private int[] _orderList = [];
    private bool _lowerOrderFinal;
    private Tensor? _groupSample;

    public DPMSolverSinglestepScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, upToThirdOrder: true, "variance_type")
    {
        _algorithmType = Config.AlgorithmType == "deis" ? "dpmsolver++" : Config.AlgorithmType!;
        if (_algorithmType is not ("dpmsolver++" or "dpmsolver"))
            throw new ArgumentException(
                $"Unknown algorithm_type '{_algorithmType}' for the " +
                $"singlestep solver (expected dpmsolver++ or dpmsolver).");
        _solverType = Config.SolverType is "logrho" or "bh1" or "bh2" ? "midpoint" : Config.SolverType!;
        if (_solverType is not ("midpoint" or "heun"))
            throw new ArgumentException($"Unknown solver_type '{_solverType}' (expected midpoint or heun).");
        if (_algorithmType != "dpmsolver++" && Config.FinalSigmasType == "zero")
            throw new ArgumentException(
                $"final_sigmas_type 'zero' is not supported with algorithm_type '{_algorithmType}'; use sigma_min.");
        _lowerOrderFinal = Config.LowerOrderFinal!.Value;
    }

    /// <summary>The solver order of each step: [1, 2, 1, 2, ...] (order 2) or [1, 2, 3, ...] (order 3), lower
    /// at the end.</summary>
    private int[] OrderList(int steps)
    {
        var order = SolverOrder;
        IEnumerable<int> Repeat(int[] pattern, int times) =>
            Enumerable.Repeat(pattern, Math.Max(times, 0)).SelectMany(p => p);
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
        // timestep_spacing is not a key of this scheduler: always linspace
        var (timesteps, sigmas) = SolverSchedule(numInferenceSteps, trainSigmas);
        var sigmaLast = SigmaConversions.FinalSigma(Config.FinalSigmasType, trainSigmas[0]);
        // diffusers forces lower_order_final when the steps do not divide into groups or the last sigma is zero
        if (!_lowerOrderFinal && (numInferenceSteps % SolverOrder != 0 || Config.FinalSigmasType == "zero"))
            _lowerOrderFinal = true;
        _orderList = OrderList(numInferenceSteps);
        SetSolverSchedule(numInferenceSteps, timesteps, sigmas.Append(sigmaLast));
    }

    protected override void ResetState()
    {
        base.ResetState();
        Replace(ref _groupSample, null);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        using var scope = torch.NewDisposeScope();

        // 1. convert the model output to x0 (dpmsolver++) or eps (dpmsolver) and push it onto the history
        PushModelOutput(ConvertModelOutput(modelOutput, sample, stepIndex));

        // 2. the order of this step within its group (lower while the history is still short)
        var order = _orderList[stepIndex];
        while (ModelOutputs[^order] is null) order--;
        // 3. a group starts at an order-1 step: later steps of the group update from this sample
        if (order == 1) Replace(ref _groupSample, sample);

        // 4. the singlestep update from the group's first sample
        var prevSample = order switch
        {
            1 => FirstOrderUpdate(ModelOutputs[^1]!, _groupSample!, stepIndex),
            2 => SecondOrderUpdate(_groupSample!, stepIndex),
            _ => ThirdOrderUpdate(_groupSample!, stepIndex),
        };
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>Data prediction x0 (dpmsolver++) or noise prediction eps (dpmsolver), as in the
    /// multistep solver.</summary>
    private Tensor ConvertModelOutput(ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex)
    {
        var learnedRange = Config.VarianceType == "learned_range";
        return _algorithmType == "dpmsolver++"
            ? PredictX0(modelOutput, sample, stepIndex, learnedRange)
            : PredictEpsilon(modelOutput, sample, stepIndex, learnedRange);
    }

    /// <summary>dpmsolver++: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0; dpmsolver: (alpha_t / alpha_s)
    /// x_s - sigma_t (e^h - 1) eps.</summary>
    private Tensor FirstOrderUpdate(ScalarSafeTensor m0, ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS, sigmaS, lambdaS) = AlphaSigmaLambda(stepIndex);
        var h = lambdaT - lambdaS;
        return _algorithmType == "dpmsolver++"
            ? sigmaT / sigmaS * sample - alphaT * (Math.Exp(-h) - 1.0) * m0
            : alphaT / alphaS * sample - sigmaT * (Math.Exp(h) - 1.0) * m0;
    }

    /// <summary>
    /// Singlestep second order from s1 (the group start) through s0 to t: h = lambda_t - lambda_s1, r0 = (lambda_s0 -
    /// lambda_s1) / h, D0 = m1, D1 = (m0 - m1) / r0; dpmsolver++ midpoint: x_t = (sigma_t / sigma_s1) x - alpha_t
    /// (e^{-h} - 1) (D0 + D1 / 2).
    /// </summary>
    private Tensor SecondOrderUpdate(ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (_, _, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (alphaS1, sigmaS1, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!;
        double h = lambdaT - lambdaS1, h0 = lambdaS0 - lambdaS1;
        var r0 = h0 / h;
        var d0 = m1;
        var d1 = 1.0 / r0 * (m0 - m1);
        var midpoint = _solverType == "midpoint";
        if (_algorithmType == "dpmsolver++")
            return midpoint
                ? sigmaT / sigmaS1 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                    - 0.5 * (alphaT * (Math.Exp(-h) - 1.0)) * d1
                : sigmaT / sigmaS1 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                    + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1;
        return midpoint
            ? alphaT / alphaS1 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0 - 0.5 * (sigmaT * (Math.Exp(h) - 1.0)) * d1
            : alphaT / alphaS1 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1;
    }

    /// <summary>
    /// Singlestep third order from s2: h = lambda_t - lambda_s2, r0 = (lambda_s0 - lambda_s2) / h, r1 = (lambda_s1 -
    /// lambda_s2) / h, D0 = m2, D1_0 = (m1 - m2) / r1, D1_1 = (m0 - m2) / r0, D1 = (r0 D1_0 - r1 D1_1) / (r0 - r1), D2
    /// = 2 (D1_1 - D1_0) / (r0 - r1).
    /// </summary>
    private Tensor ThirdOrderUpdate(ScalarSafeTensor sample, int stepIndex)
    {
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (_, _, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var (_, _, lambdaS1) = AlphaSigmaLambda(stepIndex - 1);
        var (alphaS2, sigmaS2, lambdaS2) = AlphaSigmaLambda(stepIndex - 2);
        ScalarSafeTensor m0 = ModelOutputs[^1]!, m1 = ModelOutputs[^2]!, m2 = ModelOutputs[^3]!;
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
                ? sigmaT / sigmaS2 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                    + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d11
                : sigmaT / sigmaS2 * sample - alphaT * (Math.Exp(-h) - 1.0) * d0
                    + alphaT * ((Math.Exp(-h) - 1.0) / h + 1.0) * d1
                    - alphaT * ((Math.Exp(-h) - 1.0 + h) / (h * h) - 0.5) * d2;
        return midpoint
            ? alphaT / alphaS2 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d11
            : alphaT / alphaS2 * sample - sigmaT * (Math.Exp(h) - 1.0) * d0
                - sigmaT * ((Math.Exp(h) - 1.0) / h - 1.0) * d1
                - sigmaT * ((Math.Exp(h) - 1.0 - h) / (h * h) - 0.5) * d2;
    }
}
