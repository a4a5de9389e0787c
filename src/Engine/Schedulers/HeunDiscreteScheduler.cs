using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Heun's second-order method (Karras et al. 2022, arXiv 2206.00364, Algorithm 1), diffusers
/// <c>HeunDiscreteScheduler</c>: every step is an Euler predictor and a trapezoidal corrector, two model calls
/// (timesteps and sigmas are interleaved, <c>order = 2</c>).
/// </summary>
[DiffusersScheduler("Heun (Karras et al. Algorithm 1): second order, two UNet calls per step.")]
[SchedulerAlias("Heun")]
[SchedulerAlias("Heun Karras", """{"use_karras_sigmas": true}""")]
public sealed class HeunDiscreteScheduler : SchedulerBase
{
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        BetaSchedule = "linear",
        PredictionType = "epsilon",
        UseKarrasSigmas = false,
        ClipSample = false,
        ClipSampleRange = 1.0,
        TimestepSpacing = "linspace",
        StepsOffset = 0,
    };

    private float[] _sigmaValues = [];
    private Tensor? _prevDerivative;
    private Tensor? _firstOrderSample;
    private double? _dt;

    public HeunDiscreteScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        // diffusers calls set_timesteps(num_train_timesteps) in __init__ so init_noise_sigma is defined.
        SetTimesteps(NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    public override int Order => 2;

    public override double InitNoiseSigma => SigmaFamilyInitNoiseSigma(_sigmaValues);

    /// <summary>True before the predictor (Euler) half of a step, false before the corrector half.</summary>
    public bool StateInFirstOrder => _dt is null;

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var trainSigmas = TrainSigmas();
        var logSigmas = Log32(trainSigmas);
        var timesteps = SigmaFamilyTimesteps(numInferenceSteps);
        var sigmas = NumpyCompat.Interp(timesteps, trainSigmas);
        var timestepDtype = ScalarType.Float32;
        if (Config.UseKarrasSigmas == true)
        {
            sigmas = KarrasSigmas(sigmas[^1], sigmas[0], numInferenceSteps);
            timesteps = sigmas.Select(s => SigmaToT(s, logSigmas)).ToArray();
            timestepDtype = ScalarType.Float64; // diffusers keeps numpy's float64 here
        }
        var sigmas32 = NumpyCompat.ToFloat32(sigmas.Append(0.0));

        // Interleave: [s0, s1, s1, s2, s2, ..., 0] and [t0, t1, t1, t2, t2, ...] (each later point visited twice).
        _sigmaValues = [sigmas32[0], .. sigmas32[1..^1].SelectMany(s => new[] { s, s }), sigmas32[^1]];
        double[] interleaved = [timesteps[0], .. timesteps[1..].SelectMany(t => new[] { t, t })];
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved, timestepDtype, _sigmaValues);
        ResetState();
    }

    private void ResetState()
    {
        Replace(ref _prevDerivative, null);
        Replace(ref _firstOrderSample, null);
        _dt = null;
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep) =>
        ScaleBySigma(sample, _sigmaValues[EnsureStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        double sigma = firstOrder ? _sigmaValues[stepIndex] : _sigmaValues[stepIndex - 1];
        double sigmaNext = firstOrder ? _sigmaValues[stepIndex + 1] : _sigmaValues[stepIndex];
        var sigmaHat = sigma; // gamma = 0

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at sigma_next in the corrector)
        var predOriginalSample = PredictOriginalSampleFromSigma(modelOutput, sample, firstOrder ? sigmaHat : sigmaNext);
        if (Config.ClipSample == true)
            predOriginalSample = predOriginalSample.clamp(-Config.ClipSampleRange!.Value, Config.ClipSampleRange!.Value);

        Tensor derivative;
        double dt;
        Tensor x;
        if (firstOrder)
        {
            // 2. Convert to an ODE derivative for the Euler predictor: d = (x - x0) / sigma_hat, dt = sigma_next - sigma_hat
            derivative = (sample - predOriginalSample) / sigmaHat;
            dt = sigmaNext - sigmaHat;
            Replace(ref _prevDerivative, derivative);
            Replace(ref _firstOrderSample, sample);
            _dt = dt;
            x = sample;
        }
        else
        {
            // 2. Heun corrector: d' = (x_pred - x0') / sigma_next, step from the saved sample with (d + d') / 2
            var derivative2 = (sample - predOriginalSample) / sigmaNext;
            derivative = (_prevDerivative! + derivative2) / 2;
            dt = _dt!.Value;
            x = _firstOrderSample!;
        }

        // 3. take the step: x_next = x + d dt
        var prevSample = x + derivative * dt;
        if (!firstOrder) ResetState();
        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x = x0 + sigma * noise.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseBySigma(originalSamples, noise, timesteps);

    protected override void DisposeState() => ResetState();
}
