using PSStableDiffusion.Engine.Runtime;
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
public sealed class HeunDiscreteScheduler : SigmaSchedulerBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.00085, betaEnd: 0.012) with
    {
        UseKarrasSigmas = false,
        ClipSample = false,
        ClipSampleRange = 1.0,
    };

    private Tensor? _prevDerivative;
    private Tensor? _firstOrderSample;
    private double? _dt;

    public HeunDiscreteScheduler(SchedulerConfig? config = null)
        : base(Defaults, config) => ScheduleEveryTrainingStep();

    public override int Order => 2;

    /// <summary>True before the predictor (Euler) half of a step, false before the corrector half.</summary>
    public bool StateInFirstOrder => _dt is null;

    public override void SetTimesteps(int numInferenceSteps)
    {
        var (timesteps, timestepDtype, sigmas, _) = InterpolatedSchedule(
            numInferenceSteps, roundKarrasTimesteps: false);

        // Interleave: [s0, s1, s1, s2, s2, ..., 0] and [t0, t1, t1, t2, t2, ...] (each later point visited twice).
        SigmaValues = RepeatInterleaved(sigmas, withLast: false);
        double[] interleaved = [timesteps[0], .. timesteps[1..].SelectMany(t => new[] { t, t })];
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved, timestepDtype, SigmaValues);
        ResetState();
    }

    private void ResetState()
    {
        Replace(ref _prevDerivative, null);
        Replace(ref _firstOrderSample, null);
        _dt = null;
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        double sigma = firstOrder ? SigmaValues[stepIndex] : SigmaValues[stepIndex - 1];
        double sigmaNext = firstOrder ? SigmaValues[stepIndex + 1] : SigmaValues[stepIndex];
        var sigmaHat = sigma; // gamma = 0

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at sigma_next in the corrector)
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(
            modelOutput, sample, firstOrder ? sigmaHat : sigmaNext);
        if (Config.ClipSample == true)
            predOriginalSample = predOriginalSample.Clamp(
                -Config.ClipSampleRange!.Value, Config.ClipSampleRange!.Value);

        ScalarSafeTensor derivative;
        double dt;
        ScalarSafeTensor x;
        if (firstOrder)
        {
            // 2. Convert to an ODE derivative for the Euler predictor: d = (x - x0) / sigma_hat, dt =
            // sigma_next - sigma_hat
            derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaHat;
            dt = sigmaNext - sigmaHat;
            Replace(ref _prevDerivative, derivative);
            Replace(ref _firstOrderSample, sample);
            _dt = dt;
            x = sample;
        }
        else
        {
            // 2. Heun corrector: d' = (x_pred - x0') / sigma_next, step from the saved sample with (d + d') / 2
            var derivative2 = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaNext;
            derivative = ((ScalarSafeTensor)_prevDerivative! + derivative2) / 2;
            dt = _dt!.Value;
            x = _firstOrderSample!;
        }

        // 3. take the step: x_next = x + d dt
        var prevSample = x + derivative * dt;
        if (!firstOrder) ResetState();
        StepIndex = stepIndex + 1;
        return prevSample.Tensor.MoveToOuterDisposeScope();
    }

    protected override void DisposeState() => ResetState();
}
