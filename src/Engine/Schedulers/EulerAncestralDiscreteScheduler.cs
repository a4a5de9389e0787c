using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Ancestral Euler sampler (k-diffusion <c>sample_euler_ancestral</c>), diffusers <c>EulerAncestralDiscreteScheduler</c>:
/// an Euler step to sigma_down, then fresh noise of scale sigma_up.
/// </summary>
[DiffusersScheduler("Euler ancestral: Euler step plus fresh noise each step; stochastic, good at low step counts.")]
[SchedulerAlias("Euler a")]
public sealed class EulerAncestralDiscreteScheduler : SchedulerBase
{
    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.0001,
        BetaEnd = 0.02,
        BetaSchedule = "linear",
        PredictionType = "epsilon",
        TimestepSpacing = "linspace",
        StepsOffset = 0,
        RescaleBetasZeroSnr = false,
    };

    private float[] _sigmaValues;

    public EulerAncestralDiscreteScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        if (PredictionType == "sample") throw new NotSupportedException("EulerAncestralDiscreteScheduler does not support prediction_type 'sample' (diffusers neither).");
        if (Config.RescaleBetasZeroSnr == true) SetLastAlphaCumprod(MathF.Pow(2, -24));
        _sigmaValues = Enumerable.Reverse(TrainSigmas()).Append(0f).ToArray();
    }

    public override bool IsStochastic => true;

    public override double InitNoiseSigma => SigmaFamilyInitNoiseSigma(_sigmaValues);

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var timesteps = SigmaFamilyTimesteps(numInferenceSteps);
        _sigmaValues = NumpyCompat.ToFloat32(NumpyCompat.Interp(timesteps, TrainSigmas()).Append(0.0));
        NumInferenceSteps = numInferenceSteps;
        SetSchedule(timesteps, ScalarType.Float32, _sigmaValues);
    }

    public override Tensor ScaleModelInput(Tensor sample, double timestep) =>
        ScaleBySigma(sample, _sigmaValues[EnsureStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        double sigma = _sigmaValues[stepIndex];
        var x = sample.to(ScalarType.Float32);

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        var predOriginalSample = PredictOriginalSampleFromSigma(modelOutput, x, sigma);

        // 2. split the step: sigma_up = sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2),
        //    sigma_down = sqrt(sigma_to^2 - sigma_up^2)
        double sigmaFrom = sigma, sigmaTo = _sigmaValues[stepIndex + 1];
        var sigmaUp = Math.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        var sigmaDown = Math.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);

        // 3. Convert to an ODE derivative d = (x - x0) / sigma and take an Euler step to sigma_down
        var derivative = (x - predOriginalSample) / sigma;
        var dt = sigmaDown - sigma;
        var prevSample = x + derivative * dt;

        // 4. add noise of scale sigma_up
        prevSample = prevSample + DrawNoise(noise, modelOutput, modelOutput.dtype) * sigmaUp;

        StepIndex = stepIndex + 1;
        return prevSample.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>x = x0 + sigma * noise.</summary>
    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseBySigma(originalSamples, noise, timesteps);
}
