using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// The exponential-integrator solvers: DPM-Solver++ multistep and singlestep, DEIS and UniPC. They work in the VP form
/// of the sigmas (alpha_t = 1 / sqrt(sigma² + 1), sigma_t = sigma alpha_t, lambda_t = log alpha_t - log sigma_t),
/// convert each model output to a data (x0) or noise (eps) prediction, and keep the last <c>solver_order</c> of them.
/// </summary>
public abstract class MultistepSolverBase : SchedulerBase
{
    /// <param name="defaults">The scheduler's diffusers defaults (see <see cref="SchedulerBase"/>).</param>
    /// <param name="config">A scheduler_config.json (any scheduler's) with overrides merged in, or null.</param>
    /// <param name="upToThirdOrder">Whether the scheduler's updates stop at third order (UniPC has any order).</param>
    /// <param name="extraKeys">Keys the scheduler knows whose diffusers default is None.</param>
    protected MultistepSolverBase(SchedulerConfig defaults, SchedulerConfig? config, bool upToThirdOrder,
        params string[] extraKeys) : base(defaults, config, extraKeys)
    {
        SolverOrder = Config.SolverOrder!.Value;
        if (upToThirdOrder && SolverOrder is < 1 or > 3)
            throw new ArgumentOutOfRangeException(nameof(config), SolverOrder, "solver_order must be 1, 2 or 3");
        if (SolverOrder < 1)
            throw new ArgumentOutOfRangeException(nameof(config), SolverOrder, "solver_order must be at least 1");
        // Zero terminal SNR makes the last sigma infinite; diffusers sets alphas_cumprod[-1] to
        // 2^-24 to keep it finite.
        if (Config.RescaleBetasZeroSnr == true) SetLastAlphaCumprod(MathF.Pow(2, -24));
        ModelOutputs = new Tensor?[SolverOrder];
    }

    /// <summary>The family's shared diffusers defaults; each solver adds its own keys with <c>with { }</c>.</summary>
    protected static SchedulerConfig FamilyDefaults { get; } = new()
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
        LowerOrderFinal = true,
        UseKarrasSigmas = false,
    };

    /// <summary>config.solver_order: how many past model outputs the updates use.</summary>
    protected int SolverOrder { get; }

    /// <summary>The converted model outputs of the last steps, oldest first (null until filled).</summary>
    protected Tensor?[] ModelOutputs { get; }

    /// <summary>The schedule's noise levels (float32), one per timestep plus the final one.</summary>
    protected float[] SigmaValues { get; set; } = [];

    /// <summary>Steps taken so far, capped at the solver order: the warm-up runs at lower orders.</summary>
    protected int LowerOrderNums { get; set; }

    /// <summary>alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t, lambda_t = log(alpha_t) -
    /// log(sigma_t).</summary>
    protected (double Alpha, double Sigma, double Lambda) AlphaSigmaLambda(int index)
    {
        double sigma = SigmaValues[index];
        var alpha = 1 / Math.Sqrt(sigma * sigma + 1);
        var sigmaT = sigma * alpha;
        return (alpha, sigmaT, Math.Log(alpha) - Math.Log(sigmaT));
    }

    /// <summary>
    /// The integer timesteps and their sigmas: spaced per timestep_spacing over the training steps left after
    /// lambda_min_clipped; with Karras sigmas the Karras ramp over the training sigmas and its rounded timesteps; with
    /// Lu lambdas sigmas uniform in lambda = -log(sigma). The caller appends the final sigma.
    /// </summary>
    protected (double[] Timesteps, double[] Sigmas) SolverSchedule(int n, float[] trainSigmas)
    {
        var logSigmas = Log32(trainSigmas);
        var timesteps = SpacedTimesteps(n, UnclippedTimesteps());
        if (Config.UseKarrasSigmas == true)
        {
            var sigmas = SigmaConversions.KarrasSigmas(trainSigmas[0], trainSigmas[^1], n);
            return (SigmaConversions.RoundedTimesteps(sigmas, logSigmas), sigmas);
        }
        if (Config.UseLuLambdas == true)
        {
            // Lu et al.: uniform in lambda = -log(sigma), from log_sigmas[-1] down to log_sigmas[0].
            var ramp = NumpyCompat.Linspace(0, 1, n);
            double lambdaMin = logSigmas[0], lambdaMax = logSigmas[^1];
            var sigmas = ramp.Select(r => Math.Exp(lambdaMax + r * (lambdaMin - lambdaMax))).ToArray();
            return (SigmaConversions.RoundedTimesteps(sigmas, logSigmas), sigmas);
        }
        return (timesteps, NumpyCompat.Interp(timesteps, trainSigmas));
    }

    /// <summary>
    /// The training steps the schedule may use: all of them, or (lambda_min_clipped, for cosine betas) those where
    /// lambda_t = log(alpha_t) - log(sigma_t) stays at or above the clip.
    /// </summary>
    private int UnclippedTimesteps() => Config.LambdaMinClipped is { } clip
        ? NumTrainTimesteps - TrainLambdas().Count(l => l < clip)
        : NumTrainTimesteps;

    /// <summary>
    /// linspace: <c>round(linspace(0, last - 1, n + 1))[::-1][:-1]</c>; leading: <c>arange(n + 1) * (last // (n + 1))
    /// [::-1][:-1] + steps_offset</c>; trailing: <c>round(arange(last, 0, -T / n)) - 1</c>.
    /// </summary>
    private double[] SpacedTimesteps(int n, int lastTimestep) => (Config.TimestepSpacing ?? "linspace") switch
    {
        "linspace" => NumpyCompat.Reverse(NumpyCompat.Round(NumpyCompat.Linspace(0, lastTimestep - 1, n + 1)))[..^1],
        "leading" => Enumerable.Range(0, n + 1).Reverse().Take(n)
            .Select(i => (double)(i * (lastTimestep / (n + 1)) + Config.StepsOffset!.Value)).ToArray(),
        "trailing" => NumpyCompat.Round(NumpyCompat.Arange(lastTimestep, 0, -(NumTrainTimesteps / (double)n)))
            .Select(t => t - 1).ToArray(),
        var other =>
            throw new ArgumentException(
                $"Unknown timestep_spacing '{other}' (expected linspace, leading or trailing)."),
    };

    /// <summary>Installs the integer timesteps and the sigmas (with the final one) and clears the history.</summary>
    protected void SetSolverSchedule(int numInferenceSteps, double[] timesteps, IEnumerable<double> sigmasWithFinal)
    {
        SigmaValues = NumpyCompat.ToFloat32(sigmasWithFinal);
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(timesteps, ScalarType.Int64, SigmaValues);
        ResetState();
    }

    /// <summary>
    /// The multistep order of this step: 1 while warming up or at the final step (lower_order_final below 15 steps,
    /// euler_at_final, or a zero final sigma), 2 while warming up further or at the second-to-last step, else the
    /// solver order. Lower orders at the end improve numerical stability for fewer than 15 steps.
    /// </summary>
    protected int MultistepOrder(int stepIndex)
    {
        var count = TimestepValues.Count;
        var lowerOrderFinal = stepIndex == count - 1
            && (Config.EulerAtFinal == true
                || (Config.LowerOrderFinal == true && count < 15) || Config.FinalSigmasType == "zero");
        var lowerOrderSecond = stepIndex == count - 2 && Config.LowerOrderFinal == true && count < 15;
        if (SolverOrder == 1 || LowerOrderNums < 1 || lowerOrderFinal) return 1;
        if (SolverOrder == 2 || LowerOrderNums < 2 || lowerOrderSecond) return 2;
        return 3;
    }

    /// <summary>Counts a finished step toward the warm-up (at most the solver order).</summary>
    protected void CountStep()
    {
        if (LowerOrderNums < SolverOrder) LowerOrderNums++;
    }

    /// <summary>Appends <paramref name="converted"/> to the history; the oldest output drops out.</summary>
    protected void PushModelOutput(Tensor converted)
    {
        var oldest = ModelOutputs[0];
        for (var i = 0; i < SolverOrder - 1; i++) ModelOutputs[i] = ModelOutputs[i + 1];
        ModelOutputs[^1] = Keep(converted);
        oldest?.Dispose();
    }

    /// <summary>
    /// Data prediction: epsilon x0 = (x_t - sigma_t eps) / alpha_t; sample x0 = output; v-prediction
    /// x0 = alpha_t x_t - sigma_t v; thresholded when the config asks. A learned variance (extra channels) is dropped.
    /// </summary>
    protected Tensor PredictX0(Tensor modelOutput, Tensor sample, int stepIndex, bool learnedVariance = false) =>
        PredictX0Kept(modelOutput, sample, stepIndex, learnedVariance);

    private Tensor PredictX0Kept(
        ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex, bool learnedVariance)
    {
        var (alphaT, sigmaT, _) = AlphaSigmaLambda(stepIndex);
        ScalarSafeTensor x0Pred = PredictionType switch
        {
            "epsilon" =>
                (sample - sigmaT * (ScalarSafeTensor)(
                    learnedVariance ? modelOutput.Tensor[.., ..3] : modelOutput.Tensor)) / alphaT,
            "sample" => modelOutput,
            _ => alphaT * sample - sigmaT * modelOutput,
        };
        return Config.Thresholding == true ? ThresholdSample(x0Pred) : x0Pred.Tensor;
    }

    /// <summary>Noise prediction: epsilon as is; sample eps = (x_t - alpha_t x0) / sigma_t; v eps = alpha_t v +
    /// sigma_t x_t.</summary>
    protected Tensor PredictEpsilon(Tensor modelOutput, Tensor sample, int stepIndex, bool learnedVariance = false) =>
        PredictEpsilonKept(modelOutput, sample, stepIndex, learnedVariance);

    private Tensor PredictEpsilonKept(
        ScalarSafeTensor modelOutput, ScalarSafeTensor sample, int stepIndex, bool learnedVariance)
    {
        var (alphaT, sigmaT, _) = AlphaSigmaLambda(stepIndex);
        return PredictionType switch
        {
            "epsilon" => learnedVariance ? modelOutput.Tensor[.., ..3] : modelOutput.Tensor,
            "sample" => (sample - alphaT * modelOutput) / sigmaT,
            _ => alphaT * modelOutput + sigmaT * sample,
        };
    }

    /// <summary>Forgets the history (on SetTimesteps and Dispose).</summary>
    protected virtual void ResetState()
    {
        for (var i = 0; i < ModelOutputs.Length; i++) ModelOutputs[i]?.Dispose();
        Array.Clear(ModelOutputs);
        LowerOrderNums = 0;
    }

    /// <summary>
    /// x_t = alpha_t x_0 + sigma_t noise with alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma alpha_t; a timestep
    /// outside the schedule maps to the last index.
    /// </summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        ScalarSafeTensor sigma = SigmasForAddNoise(originalSamples, timesteps, lastIfMissing: true);
        var alphaT = 1 / (sigma.Pow(2) + 1).Pow(0.5);
        ScalarSafeTensor x0 = originalSamples, z = noise;
        return (alphaT * x0 + sigma * alphaT * z).Tensor.MoveToOuterDisposeScope();
    }

    protected override void DisposeState() => ResetState();
}
