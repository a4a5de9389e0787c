using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// A diffusers noise scheduler. Usage mirrors diffusers: <see cref="SetTimesteps"/>, then for each timestep
/// <c>t</c> of <see cref="Timesteps"/>: <c>x_in = ScaleModelInput(x, t)</c>, run the model, <c>x = Step(out, t, x,
/// noise)</c>. The training schedule (betas, alphas_cumprod) is built in float32 with torch exactly as
/// diffusers does; set_timesteps
/// arithmetic follows numpy float64 where diffusers uses numpy; per-step coefficients are computed in float64 and the
/// tensor arithmetic runs in the sample's dtype (float32).
/// </summary>
public abstract class SchedulerBase : IDisposable
{
    private static readonly string[] CommonKeys =
        ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas"];

    private Tensor? _timesteps;
    private Tensor? _sigmas;
    private double[] _timestepValues = [];
    private bool _disposed;

    /// <param name="defaults">The scheduler's diffusers defaults; its non-null keys (plus the beta keys and
    /// <paramref name="extraKeys"/>) are the keys this scheduler reads from <paramref name="config"/>.</param>
    /// <param name="config">A scheduler_config.json (any scheduler's) with overrides merged in, or null.</param>
    /// <param name="extraKeys">Keys the scheduler knows whose diffusers default is None.</param>
    protected SchedulerBase(SchedulerConfig defaults, SchedulerConfig? config, params string[] extraKeys)
    {
        var known = defaults.GivenKeys().Concat(CommonKeys).Concat(extraKeys).ToHashSet(StringComparer.Ordinal);
        Config = defaults.Merge(config?.Only(known));
        NumTrainTimesteps = Config.NumTrainTimesteps ?? 1000;
        if (NumTrainTimesteps < 2)
            throw new ArgumentOutOfRangeException(
                nameof(config), NumTrainTimesteps, "num_train_timesteps must be at least 2");
        PredictionType = Config.PredictionType ?? "epsilon";
        if (PredictionType is not ("epsilon" or "v_prediction" or "sample"))
            throw new ArgumentException(
                $"Unknown prediction_type '{PredictionType}' (expected epsilon, v_prediction or sample).",
                nameof(config));

        using var scope = torch.NewDisposeScope();
        var betas = BuildBetas();
        if (Config.RescaleBetasZeroSnr == true) betas = RescaleZeroTerminalSnr(betas);
        var alphasCumprod = (1.0f - (ScalarSafeTensor)betas).Tensor.cumprod(0);
        Betas = betas.DetachFromDisposeScope();
        AlphasCumprod = alphasCumprod.DetachFromDisposeScope();
        AlphasCumprodValues = AlphasCumprod.data<float>().ToArray();
    }

    /// <summary>The diffusers class name (e.g. "DDIMScheduler").</summary>
    public string Name => GetType().Name;

    /// <summary>The effective config: this scheduler's defaults with the given config's known keys over them.</summary>
    public SchedulerConfig Config { get; }

    public int NumTrainTimesteps { get; }

    /// <summary>epsilon, v_prediction or sample.</summary>
    public string PredictionType { get; }

    /// <summary>Training betas, float32 [num_train_timesteps].</summary>
    public Tensor Betas { get; }

    /// <summary>Cumulative product of (1 - beta), float32 [num_train_timesteps].</summary>
    public Tensor AlphasCumprod { get; protected set; }

    protected float[] AlphasCumprodValues { get; set; }

    /// <summary>The step count passed to <see cref="SetTimesteps"/> (null before).</summary>
    public int? NumInferenceSteps { get; protected set; }

    /// <summary>Timesteps of the loop (int64 or float32 as in diffusers); one per model call.</summary>
    public Tensor Timesteps =>
        _timesteps ?? throw new InvalidOperationException($"{Name}: call SetTimesteps before reading Timesteps.");

    /// <summary>The timesteps as doubles (exact: int64 and float32 values both fit).</summary>
    public IReadOnlyList<double> TimestepValues => _timestepValues;

    /// <summary>The noise levels of the schedule, float32, where the scheduler has them (null otherwise).</summary>
    public Tensor? Sigmas => _sigmas;

    /// <summary>Standard deviation of the initial noise: latents start as <c>randn * InitNoiseSigma</c>.</summary>
    public virtual double InitNoiseSigma => 1.0;

    /// <summary>diffusers' <c>scheduler.order</c>: timesteps per user-level step (img2img slices by it).</summary>
    public virtual int Order => 1;

    /// <summary>Model (UNet) evaluations per user-level step.</summary>
    public virtual int ModelCallsPerStep => Order;

    /// <summary>Whether <see cref="Step"/> draws noise with this config.</summary>
    public virtual bool IsStochastic => false;

    /// <summary>Index of the next timestep to run (schedulers that count steps), null before the first step.</summary>
    public int? StepIndex { get; protected set; }

    /// <summary>The index set by <see cref="SetBeginIndex"/>, null if none.</summary>
    public int? BeginIndex { get; protected set; }

    /// <summary>Builds the inference schedule for <paramref name="numInferenceSteps"/> steps and resets the
    /// step state.</summary>
    public abstract void SetTimesteps(int numInferenceSteps);

    /// <summary>Scales the model input for timestep <paramref name="timestep"/> (identity unless the scheduler
    /// has sigmas).</summary>
    public virtual Tensor ScaleModelInput(Tensor sample, double timestep) => sample;

    /// <summary>One denoising step: returns the sample at the previous timestep (diffusers'
    /// <c>prev_sample</c>).</summary>
    /// <param name="noise">Noise for stochastic schedulers; null draws from torch's global generator, as diffusers does
    /// with <c>generator=None</c>.</param>
    public abstract Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null);

    /// <summary><see cref="Step(Tensor, double, Tensor, INoiseSource?)"/> with a 0-dim (or one-element)
    /// timestep tensor.</summary>
    public Tensor Step(Tensor modelOutput, Tensor timestep, Tensor sample, INoiseSource? noise = null) =>
        Step(modelOutput, timestep.ToDouble(), sample, noise);

    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => ScaleModelInput(sample, timestep.ToDouble());

    /// <summary>Noises clean samples to the given timesteps (img2img start, training-style forward process).</summary>
    public abstract Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps);

    /// <summary>Index of the first timestep the loop will run (img2img); schedulers that step by timestep value
    /// ignore it.</summary>
    public virtual void SetBeginIndex(int beginIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(beginIndex);
        BeginIndex = beginIndex;
    }

    /// <summary>
    /// diffusers' img2img <c>get_timesteps</c>: <c>init_timestep = min(int(n * strength), n)</c>,
    /// <c>t_start = max(n - init_timestep, 0)</c>, <c>timesteps[t_start * order:]</c>, <c>set_begin_index(t_start *
    /// order)</c>. Call after <see cref="SetTimesteps"/>.
    /// </summary>
    public StrengthSchedule ApplyStrength(double strength)
    {
        if (strength is < 0 or > 1 || double.IsNaN(strength))
            throw new ArgumentOutOfRangeException(nameof(strength), strength, "strength must be in [0, 1]");
        var n = NumInferenceSteps
            ?? throw new InvalidOperationException($"{Name}: call SetTimesteps before ApplyStrength.");
        var initTimestep = Math.Min((int)(n * strength), n);
        var tStart = Math.Max(n - initTimestep, 0);
        var begin = Math.Min(tStart * Order, _timestepValues.Length);
        var timesteps = Timesteps.slice(0, begin, _timestepValues.Length, 1);
        SetBeginIndex(begin);
        return new StrengthSchedule(timesteps, n - tStart, begin);
    }

    // ---------------------------------------------------------------- schedule state

    /// <summary>Installs the schedule: timesteps with diffusers' dtype, and sigmas (float32) where the
    /// scheduler has them.</summary>
    protected void SetSchedule(double[] timesteps, ScalarType timestepDtype, float[]? sigmas)
    {
        _timesteps?.Dispose();
        _sigmas?.Dispose();
        _timestepValues = timesteps;
        _timesteps = (timestepDtype == ScalarType.Int64
                ? torch.tensor(timesteps.Select(t => (long)t).ToArray(), ScalarType.Int64)
                : torch.tensor(timesteps, ScalarType.Float64).to(timestepDtype))
            .DetachFromDisposeScope();
        _sigmas = sigmas is null ? null : torch.tensor(sigmas, ScalarType.Float32).DetachFromDisposeScope();
        StepIndex = null;
        BeginIndex = null;
    }

    /// <summary>A handle on <paramref name="tensor"/> that survives the caller's dispose scopes
    /// (scheduler state).</summary>
    protected static Tensor Keep(Tensor tensor) => tensor.detach().DetachFromDisposeScope();

    /// <summary>Disposes <paramref name="field"/> and stores <paramref name="value"/> (kept) in it.</summary>
    protected static void Replace(ref Tensor? field, Tensor? value)
    {
        var kept = value is null ? null : Keep(value);
        field?.Dispose();
        field = kept;
    }

    // ---------------------------------------------------------------- step index (diffusers' _init_step_index)

    /// <summary>
    /// Position of <paramref name="timestep"/> in the schedule; the second match when it occurs twice (so img2img that
    /// starts mid-schedule on a duplicated timestep does not skip a step). With <paramref name="lastIfMissing"/> a
    /// timestep not in the schedule maps to the last index (DPM-Solver family); otherwise it is an error.
    /// </summary>
    protected int IndexForTimestep(double timestep, bool lastIfMissing)
    {
        var matches = new List<int>(2);
        for (var i = 0; i < _timestepValues.Length && matches.Count < 2; i++)
            if (_timestepValues[i] == timestep) matches.Add(i);
        if (matches.Count == 0)
        {
            if (lastIfMissing) return _timestepValues.Length - 1;
            throw new ArgumentException(
                $"{Name}: timestep {timestep} is not in the schedule [{string.Join(", ", _timestepValues)}].",
                nameof(timestep));
        }
        return matches.Count > 1 ? matches[1] : matches[0];
    }

    /// <summary>Sets <see cref="StepIndex"/> on the first call: the begin index if set, else the
    /// timestep's position.</summary>
    protected int EnsureStepIndex(double timestep, bool lastIfMissing = false)
    {
        if (NumInferenceSteps is null)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        StepIndex ??= BeginIndex ?? IndexForTimestep(timestep, lastIfMissing);
        return StepIndex.Value;
    }

    /// <summary>The schedule indices add_noise uses: begin/step index when set, else each
    /// timestep's position.</summary>
    protected int[] AddNoiseIndices(Tensor timesteps, bool lastIfMissing)
    {
        var values = timesteps.to(ScalarType.Float64).cpu().data<double>().ToArray();
        if (BeginIndex is null) return values.Select(t => IndexForTimestep(t, lastIfMissing)).ToArray();
        var index = StepIndex ?? BeginIndex.Value;
        return values.Select(_ => index).ToArray();
    }

    // ---------------------------------------------------------------- add_noise

    /// <summary>
    /// Forward process of the alpha-parameterised schedulers (DDPM eq. 4):
    /// x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * noise, alpha_bar indexed by the integer timesteps.
    /// </summary>
    protected Tensor AddNoiseByAlphasCumprod(Tensor originalSamples, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var alphasCumprod = AlphasCumprod.to(originalSamples.device).to(originalSamples.dtype);
        var index = timesteps.to(ScalarType.Int64).to(originalSamples.device).flatten();
        ScalarSafeTensor alphaProd = alphasCumprod.index_select(0, index);
        var shape = BroadcastShape(index.shape[0], originalSamples);
        ScalarSafeTensor sqrtAlphaProd = alphaProd.Pow(0.5).Tensor.reshape(shape);
        ScalarSafeTensor sqrtOneMinusAlphaProd = (1.0f - alphaProd).Pow(0.5).Tensor.reshape(shape);
        ScalarSafeTensor x0 = originalSamples, z = noise;
        return (sqrtAlphaProd * x0 + sqrtOneMinusAlphaProd * z).Tensor.MoveToOuterDisposeScope();
    }

    /// <summary>The schedule's sigmas at the add_noise indices, shaped [B, 1, 1, ...] in the samples' dtype.</summary>
    protected Tensor SigmasForAddNoise(Tensor originalSamples, Tensor timesteps, bool lastIfMissing)
    {
        var sigmas = Sigmas ?? throw new InvalidOperationException($"{Name}: call SetTimesteps before AddNoise.");
        var indices = torch.tensor(
            AddNoiseIndices(timesteps, lastIfMissing).Select(i => (long)i).ToArray(), ScalarType.Int64);
        return sigmas.index_select(0, indices).to(originalSamples.device).to(originalSamples.dtype)
            .reshape(BroadcastShape(indices.shape[0], originalSamples));
    }

    private static long[] BroadcastShape(long batch, Tensor like)
    {
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = batch;
        return shape;
    }

    // ---------------------------------------------------------------- noise

    /// <summary>diffusers' <c>randn_tensor(shape, generator, device, dtype)</c>: drawn by the source, moved to the
    /// sample's device.</summary>
    protected static Tensor DrawNoise(INoiseSource? source, Tensor like, ScalarType dtype)
    {
        var noise = source is null ? torch.randn(like.shape, dtype: dtype) : source.Randn(like.shape, dtype);
        if (noise.dtype != dtype) noise = noise.to(dtype);
        return noise.device == like.device ? noise : noise.to(like.device);
    }

    // ---------------------------------------------------------------- training schedule

    private Tensor BuildBetas()
    {
        var n = NumTrainTimesteps;
        if (Config.TrainedBetas is { } trained)
        {
            if (trained.Length != n)
                throw new ArgumentException(
                    $"trained_betas has {trained.Length} values but num_train_timesteps is {n}.");
            return torch.tensor(trained, ScalarType.Float64).to(ScalarType.Float32);
        }
        var start = Config.BetaStart ?? 0.0001;
        var end = Config.BetaEnd ?? 0.02;
        return (Config.BetaSchedule ?? "linear") switch
        {
            "linear" => torch.linspace(start, end, n, ScalarType.Float32),
            "scaled_linear" =>
                new ScalarSafeTensor(torch.linspace(Math.Sqrt(start), Math.Sqrt(end), n, ScalarType.Float32)).Pow(2),
            "squaredcos_cap_v2" => BetasForAlphaBar(n),
            var other => throw new ArgumentException(
                $"Unknown beta_schedule '{other}' (expected linear, scaled_linear or squaredcos_cap_v2)."),
        };
    }

    /// <summary>Cosine schedule (Nichol &amp; Dhariwal): beta_i = min(1 - abar((i+1)/T) / abar(i/T), 0.999), abar(t) =
    /// cos((t+0.008)/1.008 * pi/2)^2.</summary>
    private static Tensor BetasForAlphaBar(int n, double maxBeta = 0.999)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new double[n];
        for (var i = 0; i < n; i++)
        {
            var t1 = i / (double)n;
            var t2 = (i + 1) / (double)n;
            betas[i] = Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), maxBeta);
        }
        return torch.tensor(betas, ScalarType.Float64).to(ScalarType.Float32);
    }

    /// <summary>Zero terminal SNR (arXiv 2305.08891, Algorithm 1): shift and scale sqrt(alpha_bar) so the
    /// last is 0.</summary>
    private static Tensor RescaleZeroTerminalSnr(Tensor betas)
    {
        var alphasBarSqrt = (1.0f - (ScalarSafeTensor)betas).Tensor.cumprod(0).sqrt();
        var first = alphasBarSqrt[0].clone();
        var last = alphasBarSqrt[^1].clone();
        alphasBarSqrt = (alphasBarSqrt - last) * (first / (first - last));
        var alphasBar = new ScalarSafeTensor(alphasBarSqrt).Pow(2).Tensor;
        ScalarSafeTensor alphas = torch.cat([alphasBar[..1], alphasBar[1..] / alphasBar[..^1]]);
        return 1.0f - alphas;
    }

    /// <summary>Replaces alphas_cumprod[-1] (diffusers sets it to 2^-24 under zero SNR so sigma
    /// stays finite).</summary>
    protected void SetLastAlphaCumprod(float value)
    {
        AlphasCumprodValues[^1] = value;
        var updated = torch.tensor(AlphasCumprodValues, ScalarType.Float32).DetachFromDisposeScope();
        AlphasCumprod.Dispose();
        AlphasCumprod = updated;
    }

    /// <summary><c>((1 - alphas_cumprod) / alphas_cumprod) ** 0.5</c> in float32, ascending in t.</summary>
    protected float[] TrainSigmas()
    {
        using var scope = torch.NewDisposeScope();
        ScalarSafeTensor alphasCumprod = AlphasCumprod;
        return ((1.0f - alphasCumprod) / alphasCumprod).Pow(0.5).Tensor.data<float>().ToArray();
    }

    /// <summary>lambda_t = log(sqrt(alpha_bar)) - log(sqrt(1 - alpha_bar)), float32 as torch computes it (DPM-Solver's
    /// half log-SNR).</summary>
    protected float[] TrainLambdas()
    {
        using var scope = torch.NewDisposeScope();
        return (AlphasCumprod.sqrt().log() - (1.0f - (ScalarSafeTensor)AlphasCumprod).Tensor.sqrt().log())
            .data<float>()
            .ToArray();
    }

    /// <summary><c>np.log</c> of a float32 array (float32 result).</summary>
    protected static float[] Log32(float[] values) => values.Select(v => MathF.Log(v)).ToArray();

    // ---------------------------------------------------------------- thresholding

    /// <summary>
    /// Dynamic thresholding (Imagen, arXiv 2205.11487): s = clamp(quantile(|x0|, ratio), 1, sample_max_value) per
    /// sample, x0 = clamp(x0, -s, s) / s.
    /// </summary>
    protected Tensor ThresholdSample(Tensor sample)
    {
        var dtype = sample.dtype;
        var shape = sample.shape;
        var flat = (dtype is ScalarType.Float32 or ScalarType.Float64 ? sample : sample.to(ScalarType.Float32))
            .reshape(shape[0], -1);
        var ratio = Config.DynamicThresholdingRatio ?? 0.995;
        var maxValue = Config.SampleMaxValue ?? 1.0;
        var s = new ScalarSafeTensor(flat.abs().quantile(torch.tensor(ratio, flat.dtype), 1))
            .Clamp(1.0, maxValue)
            .Tensor.unsqueeze(1);
        var clamped = torch.minimum(torch.maximum(flat, -s), s) / s;
        return clamped.reshape(shape).to(dtype);
    }

    // ---------------------------------------------------------------- disposal

    /// <summary>Disposes the per-run state tensors of the subclass.</summary>
    protected virtual void DisposeState() { }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeState();
        _timesteps?.Dispose();
        _sigmas?.Dispose();
        Betas.Dispose();
        AlphasCumprod.Dispose();
        GC.SuppressFinalize(this);
    }
}
