using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// UniPC (Zhao et al. 2023, arXiv 2302.04867), diffusers <c>UniPCMultistepScheduler</c>: a multistep predictor
/// (UniP) plus a corrector (UniC) that reuses the next model evaluation, so the corrector is free.
/// </summary>
[DiffusersScheduler("UniPC: unified predictor-corrector multistep; strong at 5-10 steps; deterministic.")]
[SchedulerAlias("UniPC")]
public sealed class UniPCMultistepScheduler : MultistepSolverBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults with
    {
        PredictX0 = true,
        SolverType = "bh2",
        DisableCorrector = [],
        TimestepSpacing = "linspace",
        StepsOffset = 0,
        FinalSigmasType = "zero",
        RescaleBetasZeroSnr = false,
    };

    private readonly string _solverType;
    private readonly bool _predictX0;
    private readonly HashSet<int> _disableCorrector;
    private int _thisOrder;
    private Tensor? _lastSample;

    public UniPCMultistepScheduler(SchedulerConfig? config = null) : base(Defaults, config, upToThirdOrder: false)
    {
        // diffusers maps the other solvers' names to bh2
        _solverType = Config.SolverType is "midpoint" or "heun" or "logrho" ? "bh2" : Config.SolverType!;
        if (_solverType is not ("bh1" or "bh2"))
            throw new ArgumentException($"Unknown solver_type '{_solverType}' for UniPC (expected bh1 or bh2).");
        _predictX0 = Config.PredictX0!.Value;
        _disableCorrector = [.. Config.DisableCorrector!];
    }

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var (timesteps, sigmas) = SolverSchedule(numInferenceSteps, trainSigmas);
        // sigma_min here is the last Karras sigma with Karras sigmas, else the smallest training sigma
        var sigmaMin = Config.UseKarrasSigmas == true ? sigmas[^1] : trainSigmas[0];
        var sigmaLast = SigmaConversions.FinalSigma(Config.FinalSigmasType, sigmaMin);
        SetSolverSchedule(numInferenceSteps, timesteps, sigmas.Append(sigmaLast));
    }

    protected override void ResetState()
    {
        base.ResetState();
        Replace(ref _lastSample, null);
        _thisOrder = 0;
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep, lastIfMissing: true);
        using var scope = torch.NewDisposeScope();
        var useCorrector = stepIndex > 0 && !_disableCorrector.Contains(stepIndex - 1) && _lastSample is not null;

        var converted = ConvertModelOutput(modelOutput, sample, stepIndex);
        // 1. UniC: correct the sample the previous predictor produced, with this step's model output
        if (useCorrector)
            sample = CorrectorUpdate(converted, _lastSample!, sample, _thisOrder, stepIndex);

        PushModelOutput(converted);

        // 2. order for this step: warm up from 1, lower near the end when lower_order_final
        var thisOrder = Config.LowerOrderFinal == true
            ? Math.Min(SolverOrder, TimestepValues.Count - stepIndex) : SolverOrder;
        _thisOrder = Math.Min(thisOrder, LowerOrderNums + 1);
        Replace(ref _lastSample, sample);

        // 3. UniP: predict the next sample
        var prevSample = PredictorUpdate(sample, _thisOrder, stepIndex);
        CountStep();
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>Data prediction x0 (predict_x0) or noise prediction eps, from the model's prediction type.</summary>
    private Tensor ConvertModelOutput(ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex) =>
        _predictX0 ? PredictX0(modelOutput, sample, stepIndex) : PredictEpsilon(modelOutput, sample, stepIndex);

    /// <summary>
    /// The B(h) coefficients of UniPC: with hh = -h (x0 prediction) or h, h phi_1 = e^hh - 1, h phi_{k+1} = h phi_k /
    /// hh - 1/(k+1)!, R[i] = rks^(i-1), b[i] = h phi_i i! / B(h), B(h) = hh (bh1) or e^hh - 1 (bh2).
    /// </summary>
    private (double HPhi1, double BH, double[,] R, double[] B) Coefficients(double h, double[] rks, int order)
    {
        var hh = _predictX0 ? -h : h;
        var hPhi1 = Math.Exp(hh) - 1; // torch.expm1
        hPhi1 = double.IsFinite(hh) && Math.Abs(hh) < 1e-5 ? hh + hh * hh / 2 + hh * hh * hh / 6 : hPhi1;
        var hPhiK = hPhi1 / hh - 1;
        var factorial = 1.0;
        var bH = _solverType == "bh1" ? hh : hPhi1;
        var r = new double[order, rks.Length];
        var b = new double[order];
        for (var i = 1; i <= order; i++)
        {
            for (var k = 0; k < rks.Length; k++) r[i - 1, k] = Math.Pow(rks[k], i - 1);
            b[i - 1] = hPhiK * factorial / bH;
            factorial *= i + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }
        return (hPhi1, bH, r, b);
    }

    /// <summary>UniP-p (bh): x_t = (sigma_t / sigma_s0) x - alpha_t h phi_1 m0 - alpha_t B(h) sum_k rho_k D1_k (x0
    /// prediction).</summary>
    private Tensor PredictorUpdate(ScalarSafeTensor x, int order, int stepIndex)
    {
        ScalarSafeTensor m0 = ModelOutputs[^1]!;
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex + 1);
        var (alphaS0, sigmaS0, lambdaS0) = AlphaSigmaLambda(stepIndex);
        var h = lambdaT - lambdaS0;

        var rks = new List<double>();
        var d1s = new List<ScalarSafeTensor>();
        for (var i = 1; i < order; i++)
        {
            ScalarSafeTensor mi = ModelOutputs[^(i + 1)]!;
            var (_, _, lambdaSi) = AlphaSigmaLambda(stepIndex - i);
            var rk = (lambdaSi - lambdaS0) / h;
            rks.Add(rk);
            d1s.Add((mi - m0) / rk);
        }
        rks.Add(1.0);
        var (hPhi1, bH, r, b) = Coefficients(h, [.. rks], order);

        ScalarSafeTensor? predRes = null;
        if (d1s.Count > 0)
        {
            var rhosP = order == 2 ? [0.5] : Solve(r, b, order - 1);
            for (var k = 0; k < d1s.Count; k++)
                predRes = predRes is { } sum ? sum + rhosP[k] * d1s[k] : rhosP[k] * d1s[k];
        }

        var xT = _predictX0 ? sigmaT / sigmaS0 * x - alphaT * hPhi1 * m0 : alphaT / alphaS0 * x - sigmaT * hPhi1 * m0;
        if (predRes is { } res) xT = xT - (_predictX0 ? alphaT : sigmaT) * bH * res;
        return xT.Tensor.to(x.Tensor.dtype);
    }

    /// <summary>
    /// UniC (bh): x_t^c = (sigma_t / sigma_s0) x_prev - alpha_t h phi_1 m0 - alpha_t B(h) (sum_k rho_k D1_k + rho_last
    /// (m_t - m0)) with rho solving R rho = b (rho = 0.5 for order 1).
    /// </summary>
    private Tensor CorrectorUpdate(
        ScalarSafeTensor modelT, ScalarSafeTensor lastSample, ScalarSafeTensor thisSample, int order, int stepIndex)
    {
        ScalarSafeTensor m0 = ModelOutputs[^1]!;
        var (alphaT, sigmaT, lambdaT) = AlphaSigmaLambda(stepIndex);
        var (alphaS0, sigmaS0, lambdaS0) = AlphaSigmaLambda(stepIndex - 1);
        var h = lambdaT - lambdaS0;

        var rks = new List<double>();
        var d1s = new List<ScalarSafeTensor>();
        for (var i = 1; i < order; i++)
        {
            ScalarSafeTensor mi = ModelOutputs[^(i + 1)]!;
            var (_, _, lambdaSi) = AlphaSigmaLambda(stepIndex - (i + 1));
            var rk = (lambdaSi - lambdaS0) / h;
            rks.Add(rk);
            d1s.Add((mi - m0) / rk);
        }
        rks.Add(1.0);
        var (hPhi1, bH, r, b) = Coefficients(h, [.. rks], order);
        var rhosC = order == 1 ? [0.5] : Solve(r, b, order);

        ScalarSafeTensor? corrRes = null;
        for (var k = 0; k < d1s.Count; k++)
            corrRes = corrRes is { } sum ? sum + rhosC[k] * d1s[k] : rhosC[k] * d1s[k];
        var d1T = modelT - m0;
        var correction = corrRes is { } res ? res + rhosC[^1] * d1T : rhosC[^1] * d1T;

        var xT = _predictX0
            ? sigmaT / sigmaS0 * lastSample - alphaT * hPhi1 * m0 - alphaT * bH * correction
            : alphaT / alphaS0 * lastSample - sigmaT * hPhi1 * m0 - sigmaT * bH * correction;
        return xT.Tensor.to(lastSample.Tensor.dtype);
    }

    /// <summary>Solves the leading n x n block of R x = b (Gaussian elimination with partial pivoting; n &lt;=
    /// solver order).</summary>
    private static double[] Solve(double[,] r, double[] b, int n)
    {
        var a = new double[n, n + 1];
        for (var i = 0; i < n; i++)
        {
            for (var j = 0; j < n; j++) a[i, j] = r[i, j];
            a[i, n] = b[i];
        }
        for (var col = 0; col < n; col++)
        {
            var pivot = col;
            for (var row = col + 1; row < n; row++)
                if (Math.Abs(a[row, col]) > Math.Abs(a[pivot, col])) pivot = row;
            for (var j = 0; j <= n; j++) (a[col, j], a[pivot, j]) = (a[pivot, j], a[col, j]);
            for (var row = col + 1; row < n; row++)
            {
                var factor = a[row, col] / a[col, col];
                for (var j = col; j <= n; j++) a[row, j] -= factor * a[col, j];
            }
        }
        var x = new double[n];
        for (var i = n - 1; i >= 0; i--)
        {
            var sum = a[i, n];
            for (var j = i + 1; j < n; j++) sum -= a[i, j] * x[j];
            x[i] = sum / a[i, i];
        }
        return x;
    }
}
