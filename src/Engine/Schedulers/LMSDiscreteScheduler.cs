using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Linear multistep (k-diffusion <c>sample_lms</c>), diffusers <c>LMSDiscreteScheduler</c>: up to fourth order,
/// coefficients integrate the Lagrange basis of the last derivatives over [sigma_i, sigma_{i+1}].
/// </summary>
[DiffusersScheduler("LMS: linear multistep (order 4) on the k-diffusion sigmas; deterministic.")]
[SchedulerAlias("LMS")]
[SchedulerAlias("LMS Karras", """{"use_karras_sigmas": true}""")]
public sealed class LMSDiscreteScheduler : SigmaSchedulerBase
{
    private const int LmsOrder = 4;

    public static SchedulerConfig Defaults { get; } = FamilyDefaults(betaStart: 0.0001, betaEnd: 0.02) with
    {
        UseKarrasSigmas = false,
    };

    // 4-point Gauss-Legendre: exact for the degree <= 3 polynomials integrated here (diffusers uses scipy quad).
    private static readonly double[] GaussNodes =
        [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
    private static readonly double[] GaussWeights =
        [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

    private readonly List<Tensor> _derivatives = [];

    public LMSDiscreteScheduler(SchedulerConfig? config = null) : base(Defaults, config) => ScheduleEveryTrainingStep();

    public override void SetTimesteps(int numInferenceSteps)
    {
        SetInterpolatedSchedule(numInferenceSteps);
        ClearDerivatives();
    }

    private void ClearDerivatives()
    {
        foreach (var d in _derivatives) d.Dispose();
        _derivatives.Clear();
    }

    /// <summary>
    /// Integral over [sigma_t, sigma_{t+1}] of the Lagrange basis polynomial
    /// prod_{k != j} (tau - sigma_{t-k}) / (sigma_{t-j} - sigma_{t-k}).
    /// </summary>
    private double LmsCoefficient(int order, int t, int currentOrder)
    {
        double LmsDerivative(double tau)
        {
            var product = 1.0;
            for (var k = 0; k < order; k++)
            {
                if (k == currentOrder) continue;
                product *= (tau - SigmaValues[t - k]) / ((double)SigmaValues[t - currentOrder] - SigmaValues[t - k]);
            }
            return product;
        }

        double a = SigmaValues[t], b = SigmaValues[t + 1];
        double half = (b - a) / 2, mid = (a + b) / 2, sum = 0;
        for (var i = 0; i < GaussNodes.Length; i++) sum += GaussWeights[i] * LmsDerivative(mid + half * GaussNodes[i]);
        return sum * half;
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        var stepIndex = EnsureStepIndex(timestep);
        using var scope = torch.NewDisposeScope();
        double sigma = SigmaValues[stepIndex];

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        ScalarSafeTensor predOriginalSample = PredictOriginalSample(modelOutput, sample, sigma);

        // 2. Convert to an ODE derivative d = (x - x0) / sigma and keep the last `order` of them
        var derivative = ((ScalarSafeTensor)sample - predOriginalSample) / sigma;
        _derivatives.Add(Keep(derivative));
        if (_derivatives.Count > LmsOrder)
        {
            _derivatives[0].Dispose();
            _derivatives.RemoveAt(0);
        }

        // 3. Compute linear multistep coefficients
        var order = Math.Min(stepIndex + 1, LmsOrder);
        var coefficients = Enumerable.Range(0, order).Select(j => LmsCoefficient(order, stepIndex, j)).ToArray();

        // 4. Compute previous sample based on the derivatives path: x + sum_j c_j d_{i-j}
        ScalarSafeTensor? sum = null;
        // zip() in diffusers: after an img2img start there may be fewer derivatives than the order.
        for (var j = 0; j < Math.Min(order, _derivatives.Count); j++)
        {
            var term = coefficients[j] * (ScalarSafeTensor)_derivatives[_derivatives.Count - 1 - j];
            sum = sum is { } partial ? partial + term : term;
        }
        var prevSample = (ScalarSafeTensor)sample + sum!.Value;

        StepIndex = stepIndex + 1;
        return prevSample.Tensor.MoveToOuterDisposeScope();
    }

    protected override void DisposeState() => ClearDerivatives();
}
