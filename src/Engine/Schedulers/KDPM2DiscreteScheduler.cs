using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// k-diffusion's DPM-Solver-2 (<c>sample_dpm_2</c>, after Karras et al. 2022), diffusers <c>KDPM2DiscreteScheduler</c>:
/// each step evaluates the model at sigma and at the log-midpoint sigma_mid = exp((log sigma + log sigma_next) / 2).
/// </summary>
[DiffusersScheduler("DPM2 (k-diffusion sample_dpm_2): second order, two UNet calls per step; deterministic.")]
[SchedulerAlias("DPM2")]
[SchedulerAlias("DPM2 Karras", """{"use_karras_sigmas": true}""")]
public sealed class KDPM2DiscreteScheduler : SigmaSchedulerBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.00085, betaEnd: 0.012) with
    {
        UseKarrasSigmas = false,
    };

    private float[] _sigmaInterpolValues = [];
    private Tensor? _firstOrderSample;

    public KDPM2DiscreteScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, supportsSamplePrediction: false) =>
        ScheduleEveryTrainingStep();

    public override int Order => 2;

    /// <summary>True before the first of the step's two model calls.</summary>
    public bool StateInFirstOrder => _firstOrderSample is null;

    public override void SetTimesteps(int numInferenceSteps)
    {
        var (timesteps, timestepDtype, sigmas32, logSigmas) = InterpolatedSchedule(
            numInferenceSteps, roundKarrasTimesteps: true);

        // sigma_mid_i = exp(lerp(log sigma_i, log sigma_{i-1}, 0.5)), in float32 torch ops as diffusers
        float[] interpol;
        using (torch.NewDisposeScope())
        {
            var s = torch.tensor(sigmas32);
            interpol = s.log().lerp(s.roll(1).log(), 0.5).exp().data<float>().ToArray();
        }

        SigmaValues = RepeatInterleaved(sigmas32, withLast: true);
        _sigmaInterpolValues = RepeatInterleaved(interpol, withLast: true);

        // Timesteps of the midpoints, interleaved: [t0, tmid_1, t1, tmid_2, t2, ...] (tmid from _sigma_to_t in float32)
        var midTimesteps = interpol.Select(v => (double)SigmaConversions.SigmaToTFloat32(v, logSigmas)).ToArray();
        if (timestepDtype == ScalarType.Float32) midTimesteps = midTimesteps.Select(v => (double)(float)v).ToArray();
        var interleaved = new List<double> { timesteps[0] };
        for (var i = 1; i < timesteps.Length; i++) interleaved.AddRange([midTimesteps[i], timesteps[i]]);

        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved.ToArray(), timestepDtype, SigmaValues);
        Replace(ref _firstOrderSample, null);
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        var stepIndex = EnsureStepIndex(timestep);
        var sigma = StateInFirstOrder ? SigmaValues[stepIndex] : _sigmaInterpolValues[stepIndex];
        return ScaleBySigma(sample, sigma);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        double sigma, sigmaInterpol, sigmaNext;
        if (firstOrder)
            (sigma, sigmaInterpol, sigmaNext) =
                (SigmaValues[stepIndex], _sigmaInterpolValues[stepIndex + 1], SigmaValues[stepIndex + 1]);
        else
            (sigma, sigmaInterpol, sigmaNext) =
                (SigmaValues[stepIndex - 1], _sigmaInterpolValues[stepIndex], SigmaValues[stepIndex]);
        var sigmaHat = sigma; // gamma = 0

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at
        // sigma_mid in the second call)
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(
            modelOutput, sample, firstOrder ? sigmaHat : sigmaInterpol);

        Tensor prevSample;
        if (firstOrder)
        {
            // 2. DPM-Solver-2 first half: d = (x - x0) / sigma_hat, Euler step to sigma_mid
            var derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaHat;
            prevSample = (ScalarSafeTensor)sample + derivative * (sigmaInterpol - sigmaHat);
            Replace(ref _firstOrderSample, sample);
        }
        else
        {
            // 3. second half: d_mid = (x_mid - x0_mid) / sigma_mid, step the saved sample by d_mid
            // (sigma_next - sigma_hat)
            var derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaInterpol;
            prevSample = (ScalarSafeTensor)_firstOrderSample! + derivative * (sigmaNext - sigmaHat);
            Replace(ref _firstOrderSample, null);
        }

        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    protected override void DisposeState() => Replace(ref _firstOrderSample, null);
}
