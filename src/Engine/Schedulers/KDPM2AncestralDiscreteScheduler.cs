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
public sealed class KDPM2AncestralDiscreteScheduler : SchedulerBase
{
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        BetaSchedule = "linear",
        UseKarrasSigmas = false,
        PredictionType = "epsilon",
        TimestepSpacing = "linspace",
        StepsOffset = 0,
    };

    private float[] _sigmaValues = [];
    private float[] _sigmaInterpolValues = [];
    private float[] _sigmaUpValues = [];
    private float[] _sigmaDownValues = [];
    private Tensor? _firstOrderSample;

    public KDPM2AncestralDiscreteScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        if (PredictionType == "sample") throw new NotSupportedException("KDPM2AncestralDiscreteScheduler does not support prediction_type 'sample' (diffusers neither).");
        SetTimesteps(NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    public override int Order => 2;

    public override bool IsStochastic => true;

    public override double InitNoiseSigma => SigmaFamilyInitNoiseSigma(_sigmaValues);

    public bool StateInFirstOrder => _firstOrderSample is null;

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
            timesteps = NumpyCompat.Round(sigmas.Select(s => SigmaToT(s, logSigmas)).ToArray());
            timestepDtype = ScalarType.Float64;
        }
        var sigmas32 = NumpyCompat.ToFloat32(sigmas.Append(0.0));

        // float32 torch ops as diffusers: sigma_up = sqrt(next^2 (s^2 - next^2) / s^2), sigma_down = sqrt(next^2 - up^2),
        // sigma_mid = exp(lerp(log s, log sigma_down, 0.5)) (the last two zero)
        float[] up, down, interpol;
        using (torch.NewDisposeScope())
        {
            var s = torch.tensor(sigmas32);
            var next = s.roll(-1);
            next[^1] = torch.tensor(0f);
            var sigmasUp = (next.pow(2) * (s.pow(2) - next.pow(2)) / s.pow(2)).pow(0.5);
            var sigmasDown = (next.pow(2) - sigmasUp.pow(2)).pow(0.5);
            sigmasDown[^1] = torch.tensor(0f);
            var sigmasInterpol = s.log().lerp(sigmasDown.log(), 0.5).exp();
            sigmasInterpol[^2..] = torch.tensor(0f);
            (up, down, interpol) = (sigmasUp.data<float>().ToArray(), sigmasDown.data<float>().ToArray(), sigmasInterpol.data<float>().ToArray());
        }

        static float[] Interleave(float[] v) => [v[0], .. v[1..].SelectMany(x => new[] { x, x }), v[^1]];
        _sigmaValues = Interleave(sigmas32);
        _sigmaInterpolValues = Interleave(interpol);
        _sigmaUpValues = Interleave(up);
        _sigmaDownValues = Interleave(down);

        var midTimesteps = interpol.Select(v => (double)SigmaToTFloat32(v, logSigmas)).ToArray();
        var interleaved = new List<double> { timesteps[0] };
        for (var i = 1; i < timesteps.Length; i++) interleaved.AddRange([midTimesteps[i - 1], timesteps[i]]);

        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved.ToArray(), timestepDtype, _sigmaValues);
        Replace(ref _firstOrderSample, null);
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        var stepIndex = EnsureStepIndex(timestep);
        var sigma = StateInFirstOrder ? _sigmaValues[stepIndex] : _sigmaInterpolValues[stepIndex - 1];
        return ScaleBySigma(sample, sigma);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        var i = firstOrder ? stepIndex : stepIndex - 1;
        double sigma = _sigmaValues[i], sigmaInterpol = _sigmaInterpolValues[i], sigmaUp = _sigmaUpValues[i];
        // sigmas_down[step_index - 1]; Python's index -1 (first call) is the last element, unused in the first half
        double sigmaDown = _sigmaDownValues[stepIndex == 0 ? _sigmaDownValues.Length - 1 : stepIndex - 1];
        var sigmaHat = sigma; // gamma = 0

        // diffusers draws the noise on every call, used only by the second half
        var stepNoise = DrawNoise(noise, modelOutput, modelOutput.dtype);

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at sigma_mid in the second call)
        var predOriginalSample = PredictOriginalSampleFromSigma(modelOutput, sample, firstOrder ? sigmaHat : sigmaInterpol);

        Tensor prevSample;
        if (firstOrder)
        {
            // 2. first half: d = (x - x0) / sigma_hat, Euler step to sigma_mid
            var derivative = (sample - predOriginalSample) / sigmaHat;
            prevSample = sample + derivative * (sigmaInterpol - sigmaHat);
            Replace(ref _firstOrderSample, sample);
        }
        else
        {
            // 3. second half: d_mid = (x_mid - x0_mid) / sigma_mid, step the saved sample to sigma_down, add sigma_up noise
            var derivative = (sample - predOriginalSample) / sigmaInterpol;
            prevSample = _firstOrderSample! + derivative * (sigmaDown - sigmaHat);
            prevSample = prevSample + stepNoise * sigmaUp;
            Replace(ref _firstOrderSample, null);
        }

        StepIndex = stepIndex + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x = x0 + sigma * noise.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseBySigma(originalSamples, noise, timesteps);

    protected override void DisposeState() => Replace(ref _firstOrderSample, null);
}
