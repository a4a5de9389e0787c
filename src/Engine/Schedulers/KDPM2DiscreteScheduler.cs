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
public sealed class KDPM2DiscreteScheduler : SchedulerBase
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
    private Tensor? _firstOrderSample;

    public KDPM2DiscreteScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        if (PredictionType == "sample") throw new NotSupportedException("KDPM2DiscreteScheduler does not support prediction_type 'sample' (diffusers neither).");
        SetTimesteps(NumTrainTimesteps);
        NumInferenceSteps = null;
    }

    public override int Order => 2;

    public override double InitNoiseSigma => SigmaFamilyInitNoiseSigma(_sigmaValues);

    /// <summary>True before the first of the step's two model calls.</summary>
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

        // sigma_mid_i = exp(lerp(log sigma_i, log sigma_{i-1}, 0.5)), in float32 torch ops as diffusers
        float[] interpol;
        using (torch.NewDisposeScope())
        {
            var s = torch.tensor(sigmas32);
            interpol = s.log().lerp(s.roll(1).log(), 0.5).exp().data<float>().ToArray();
        }

        _sigmaValues = [sigmas32[0], .. sigmas32[1..].SelectMany(v => new[] { v, v }), sigmas32[^1]];
        _sigmaInterpolValues = [interpol[0], .. interpol[1..].SelectMany(v => new[] { v, v }), interpol[^1]];

        // Timesteps of the midpoints, interleaved: [t0, tmid_1, t1, tmid_2, t2, ...] (tmid from _sigma_to_t in float32)
        var midTimesteps = interpol.Select(v => (double)SigmaToTFloat32(v, logSigmas)).ToArray();
        if (timestepDtype == ScalarType.Float32) midTimesteps = midTimesteps.Select(v => (double)(float)v).ToArray();
        var interleaved = new List<double> { timesteps[0] };
        for (var i = 1; i < timesteps.Length; i++) interleaved.AddRange([midTimesteps[i], timesteps[i]]);

        NumInferenceSteps = numInferenceSteps;
        SetSchedule(interleaved.ToArray(), timestepDtype, _sigmaValues);
        Replace(ref _firstOrderSample, null);
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep)
    {
        var stepIndex = EnsureStepIndex(timestep);
        var sigma = StateInFirstOrder ? _sigmaValues[stepIndex] : _sigmaInterpolValues[stepIndex];
        return ScaleBySigma(sample, sigma);
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        var firstOrder = StateInFirstOrder;
        double sigma, sigmaInterpol, sigmaNext;
        if (firstOrder)
            (sigma, sigmaInterpol, sigmaNext) = (_sigmaValues[stepIndex], _sigmaInterpolValues[stepIndex + 1], _sigmaValues[stepIndex + 1]);
        else
            (sigma, sigmaInterpol, sigmaNext) = (_sigmaValues[stepIndex - 1], _sigmaInterpolValues[stepIndex], _sigmaValues[stepIndex]);
        var sigmaHat = sigma; // gamma = 0

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise (at sigma_mid in the second call)
        var predOriginalSample = PredictOriginalSampleFromSigma(modelOutput, sample, firstOrder ? sigmaHat : sigmaInterpol);

        Tensor prevSample;
        if (firstOrder)
        {
            // 2. DPM-Solver-2 first half: d = (x - x0) / sigma_hat, Euler step to sigma_mid
            var derivative = (sample - predOriginalSample) / sigmaHat;
            prevSample = sample + derivative * (sigmaInterpol - sigmaHat);
            Replace(ref _firstOrderSample, sample);
        }
        else
        {
            // 3. second half: d_mid = (x_mid - x0_mid) / sigma_mid, step the saved sample by d_mid (sigma_next - sigma_hat)
            var derivative = (sample - predOriginalSample) / sigmaInterpol;
            prevSample = _firstOrderSample! + derivative * (sigmaNext - sigmaHat);
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
