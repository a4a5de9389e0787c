using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// k-diffusion's ancestral DPM-Solver-2 (<c>sample_dpm_2_ancestral</c>), diffusers
/// <c>KDPM2AncestralDiscreteScheduler</c>: the second-order step lands at sigma_down, then noise of scale sigma_up.
/// </summary>
[DiffusersScheduler("DPM2 ancestral: DPM2 with fresh noise each step; stochastic, two UNet calls per step.")]
[SchedulerAlias("DPM2 a")]
[SchedulerAlias("DPM2 a Karras", """{"use_karras_sigmas": true}""")]
public sealed class KDPM2AncestralDiscreteScheduler : SigmaSchedulerBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.00085, betaEnd: 0.012) with
    {
        UseKarrasSigmas = false,
    };

    private float[] _sigmaInterpolValues = [];
    private float[] _sigmaUpValues = [];
    private float[] _sigmaDownValues = [];
    private Tensor? _firstOrderSample;

    public KDPM2AncestralDiscreteScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, supportsSamplePrediction: false) =>
        ScheduleEveryTrainingStep();

    public override int Order => 2;

    public override bool IsStochastic => true;

    public bool StateInFirstOrder => _firstOrderSample is null;

    public override void SetTimesteps(int numInferenceSteps)
    {
        var (timesteps, timestepDtype, sigmas32, logSigmas) = InterpolatedSchedule(
            numInferenceSteps, roundKarrasTimesteps: true);

        // float32 torch ops as diffusers: sigma_up = sqrt(next^2 (s^2 - next^2) / s^2), sigma_down = sqrt(next^2 -
        // up^2), sigma_mid = exp(lerp(log s, log sigma_down, 0.5)) (the last two zero)
        float[] up, down, interpol;
        using (torch.NewDisposeScope())
        {
            var s = torch.tensor(sigmas32);
            var next = s.roll(-1);
            next[^1] = torch.tensor(0f);
            ScalarSafeTensor sigma = s, sigmaNext = next;
            ScalarSafeTensor sigmaUp = (sigmaNext.Pow(2) * (sigma.Pow(2) - sigmaNext.Pow(2)) / sigma.Pow(2)).Pow(0.5);
            var sigmasUp = sigmaUp.Tensor;
            var sigmasDown = (sigmaNext.Pow(2) - sigmaUp.Pow(2)).Pow(0.5).Tensor;
            sigmasDown[^1] = torch.tensor(0f);
            var sigmasInterpol = s.log().lerp(sigmasDown.log(), 0.5).exp();
            sigmasInterpol[^2..] = torch.tensor(0f);
            (up, down, interpol) = (sigmasUp.data<float>().ToArray(), sigmasDown.data<float>().ToArray(),
                sigmasInterpol.data<float>().ToArray());
        }

        SigmaValues = RepeatInterleaved(sigmas32, withLast: true);
        _sigmaInterpolValues = RepeatInterleaved(interpol, withLast: true);
        _sigmaUpValues = RepeatInterleaved(up, withLast: true);
        _sigmaDownValues = RepeatInterleaved(down, withLast: true);

        var midTimesteps = interpol.Select(v => (double)SigmaConversions.SigmaToTFloat32(v, logSigmas)).ToArray();
        var interleaved = new List<double> { timesteps[0] };
        for (var i = 1; i < timesteps.Length; i++) interleaved.AddRange([midTimesteps[i - 1], timesteps[i]]);

        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved.ToArray(), timestepDtype, SigmaValues);
        Replace(ref _firstOrderSample, null);
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        var stepIndex = EnsureStepIndex(timestep);
        var sigma = StateInFirstOrder ? SigmaValues[stepIndex] : _sigmaInterpolValues[stepIndex - 1];
        return ScaleBySigma(sample, sigma);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        var i = firstOrder ? stepIndex : stepIndex - 1;
        double sigma = SigmaValues[i], sigmaInterpol = _sigmaInterpolValues[i], sigmaUp = _sigmaUpValues[i];
        // sigmas_down[step_index - 1]; Python's index -1 (first call) is the last element, unused in the first half
        double sigmaDown = _sigmaDownValues[stepIndex == 0 ? _sigmaDownValues.Length - 1 : stepIndex - 1];
        var sigmaHat = sigma; // gamma = 0

        // diffusers draws the noise on every call, used only by the second half
        var stepNoise = DrawNoise(noise, modelOutput, modelOutput.dtype);

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at
        // sigma_mid in the second call)
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(
            modelOutput, sample, firstOrder ? sigmaHat : sigmaInterpol);

        Tensor prevSample;
        if (firstOrder)
        {
            // 2. first half: d = (x - x0) / sigma_hat, Euler step to sigma_mid
            var derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaHat;
            prevSample = (ScalarSafeTensor)sample + derivative * (sigmaInterpol - sigmaHat);
            Replace(ref _firstOrderSample, sample);
        }
        else
        {
            // 3. second half: d_mid = (x_mid - x0_mid) / sigma_mid, step the saved sample to
            // sigma_down, add sigma_up noise
            var derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigmaInterpol;
            prevSample = (ScalarSafeTensor)_firstOrderSample! + derivative * (sigmaDown - sigmaHat);
            prevSample = (ScalarSafeTensor)prevSample + (ScalarSafeTensor)stepNoise * sigmaUp;
            Replace(ref _firstOrderSample, null);
        }

        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    protected override void DisposeState() => Replace(ref _firstOrderSample, null);
}
