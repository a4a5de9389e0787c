using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Ancestral Euler sampler (k-diffusion <c>sample_euler_ancestral</c>), diffusers
/// <c>EulerAncestralDiscreteScheduler</c>: an Euler step to sigma_down, then fresh noise of scale sigma_up.
/// </summary>
[DiffusersScheduler("Euler ancestral: Euler step plus fresh noise each step; stochastic, good at low step counts.")]
[SchedulerAlias("Euler a")]
public sealed class EulerAncestralDiscreteScheduler : SigmaSchedulerBase
{
    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.0001, betaEnd: 0.02) with
    {
        RescaleBetasZeroSnr = false,
    };

    public EulerAncestralDiscreteScheduler(SchedulerConfig? config = null)
        : base(Defaults, config, supportsSamplePrediction: false)
    {
    }

    public override bool IsStochastic => true;

    public override void SetTimesteps(int numInferenceSteps) => SetInterpolatedSchedule(numInferenceSteps);

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        double sigma = SigmaValues[stepIndex];
        ScalarSafeTensor x = sample.to(ScalarType.Float32);

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(modelOutput, x, sigma);

        // 2. split the step: sigma_up = sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2),
        //    sigma_down = sqrt(sigma_to^2 - sigma_up^2)
        double sigmaFrom = sigma, sigmaTo = SigmaValues[stepIndex + 1];
        var sigmaUp = Math.Sqrt(
            sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        var sigmaDown = Math.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);

        // 3. Convert to an ODE derivative d = (x - x0) / sigma and take an Euler step to sigma_down
        var derivative = (x - predOriginalSample) / sigma;
        var dt = sigmaDown - sigma;
        var prevSample = x + derivative * dt;

        // 4. add noise of scale sigma_up
        prevSample = prevSample + (ScalarSafeTensor)DrawNoise(noise, modelOutput, modelOutput.dtype) * sigmaUp;

        StepIndex = stepIndex + 1;
        return prevSample.Tensor.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }
}
