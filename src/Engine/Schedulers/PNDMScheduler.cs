using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Pseudo numerical methods for diffusion models (Liu et al. 2022, arXiv 2202.09778), diffusers <c>PNDMScheduler</c>:
/// Runge-Kutta warm-up (PRK) then linear multistep (PLMS); with <c>skip_prk_steps</c> (Stable Diffusion) the PLMS
/// warm-up reuses the first model output, which costs one extra model call.
/// </summary>
[DiffusersScheduler("PNDM/PLMS: pseudo linear multistep (skip_prk_steps for SD); deterministic.")]
[SchedulerAlias("PLMS", """{"skip_prk_steps": true}""")]
[SchedulerAlias("PNDM")]
public sealed class PNDMScheduler : SchedulerBase
{
    private const int PndmOrder = 4;

    public static SchedulerConfig Defaults { get; } = new()
    {
        NumTrainTimesteps = 1000,
        BetaStart = 0.0001,
        BetaEnd = 0.02,
        BetaSchedule = "linear",
        SkipPrkSteps = false,
        SetAlphaToOne = false,
        PredictionType = "epsilon",
        TimestepSpacing = "leading",
        StepsOffset = 0,
    };

    private readonly double _finalAlphaCumprod;
    private readonly List<Tensor> _ets = [];
    private double[] _prkTimesteps = [];
    private Tensor? _curModelOutput;
    private Tensor? _curSample;
    private int _counter;

    public PNDMScheduler(SchedulerConfig? config = null) : base(Defaults, config)
    {
        if (PredictionType == "sample")
            throw new NotSupportedException(
                "PNDMScheduler supports prediction_type epsilon and v_prediction only (diffusers too).");
        _finalAlphaCumprod = Config.SetAlphaToOne!.Value ? 1.0 : AlphasCumprodValues[0];
    }

    private bool SkipPrk => Config.SkipPrkSteps == true;

    public override void SetTimesteps(int numInferenceSteps)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numInferenceSteps, 1);
        var t = NumTrainTimesteps;
        double[] baseTimesteps = (Config.TimestepSpacing ?? "leading") switch
        {
            "linspace" => NumpyCompat.Round(NumpyCompat.Linspace(0, t - 1, numInferenceSteps)),
            "leading" =>
                Enumerable.Range(0, numInferenceSteps)
                    .Select(i => (double)(i * (t / numInferenceSteps) + Config.StepsOffset!.Value))
                    .ToArray(),
            "trailing" =>
                Enumerable.Reverse(NumpyCompat.Round(NumpyCompat.Arange(t, 0, -(t / (double)numInferenceSteps))))
                    .Select(v => v - 1)
                    .ToArray(),
            var other =>
                throw new ArgumentException(
                    $"Unknown timestep_spacing '{other}' (expected leading, trailing or linspace)."),
        }; // ascending

        double[] plms;
        if (SkipPrk)
        {
            // PLMS only: the second-to-last timestep twice (warm-up), descending: [.., t_{n-2},
            // t_{n-2}, t_{n-1}] reversed
            _prkTimesteps = [];
            double[] secondLast = baseTimesteps.Length >= 2 ? [baseTimesteps[^2]] : []; // numpy [-2:-1]
            plms = Enumerable.Reverse([.. baseTimesteps[..^1], .. secondLast, baseTimesteps[^1]]).ToArray();
        }
        else
        {
            // PRK on the last 4 timesteps with half steps: repeat(2) + tile([0, T // n // 2]), then the middle pairs
            var half = t / numInferenceSteps / 2;
            var prk = baseTimesteps[^Math.Min(PndmOrder, baseTimesteps.Length)..].SelectMany(
                v => new[] { v, v + half }).ToArray();
            var repeated = prk[..^1].SelectMany(v => new[] { v, v }).ToArray();
            _prkTimesteps = Enumerable.Reverse(repeated[1..^1]).ToArray();
            plms = Enumerable.Reverse(baseTimesteps[..Math.Max(baseTimesteps.Length - 3, 0)]).ToArray();
        }
        NumInferenceSteps = numInferenceSteps;
        SetSchedule([.. _prkTimesteps, .. plms], ScalarType.Int64, sigmas: null);
        ResetState();
    }

    private void ResetState()
    {
        foreach (var e in _ets) e.Dispose();
        _ets.Clear();
        Replace(ref _curModelOutput, null);
        Replace(ref _curSample, null);
        _counter = 0;
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, INoiseSource? noise = null)
    {
        if (NumInferenceSteps is null)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        using var scope = torch.NewDisposeScope();
        var result = _counter < _prkTimesteps.Length && !SkipPrk
            ? StepPrk(modelOutput, (int)timestep, sample)
            : StepPlms(modelOutput, (int)timestep, sample);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Runge-Kutta warm-up: four evaluations per step combined as (1/6, 1/3, 1/3, 1/6).</summary>
    private Tensor StepPrk(ScalarSafeTensor modelOutput, int timestep, ScalarSafeTensor sample)
    {
        var diffToPrev = _counter % 2 == 1 ? 0 : NumTrainTimesteps / NumInferenceSteps!.Value / 2;
        var prevTimestep = timestep - diffToPrev;
        timestep = (int)_prkTimesteps[_counter / 4 * 4];

        switch (_counter % 4)
        {
            case 0:
                Replace(ref _curModelOutput, 1.0 / 6 * modelOutput);
                _ets.Add(Keep(modelOutput));
                Replace(ref _curSample, sample);
                break;
            case 1:
            case 2:
                Replace(ref _curModelOutput, (ScalarSafeTensor)_curModelOutput! + 1.0 / 3 * modelOutput);
                break;
            default:
                modelOutput = (ScalarSafeTensor)_curModelOutput! + 1.0 / 6 * modelOutput;
                Replace(ref _curModelOutput, null);
                break;
        }

        var curSample = _curSample ?? sample;
        var prevSample = GetPrevSample(curSample, timestep, prevTimestep, modelOutput);
        _counter++;
        return prevSample;
    }

    /// <summary>
    /// Linear multistep on the model outputs e: 1 output: e_t (and the warm-up averages (e_t + e_{t-1}) / 2);
    /// 2: (3e_t - e_{t-1}) / 2; 3: (23e_t - 16e_{t-1} + 5e_{t-2}) / 12; 4: (55e_t - 59e_{t-1} +
    /// 37e_{t-2} - 9e_{t-3}) / 24.
    /// </summary>
    private Tensor StepPlms(ScalarSafeTensor modelOutput, int timestep, ScalarSafeTensor sample)
    {
        if (!SkipPrk && _ets.Count < 3)
            throw new InvalidOperationException(
                $"{Name} can only be run AFTER scheduler has been run in 'prk' mode for at least 12 iterations.");

        var stepSize = NumTrainTimesteps / NumInferenceSteps!.Value;
        var prevTimestep = timestep - stepSize;
        if (_counter != 1)
        {
            while (_ets.Count > 3)
            {
                _ets[0].Dispose();
                _ets.RemoveAt(0);
            }
            _ets.Add(Keep(modelOutput));
        }
        else
        {
            prevTimestep = timestep;
            timestep += stepSize;
        }

        if (_ets.Count == 1 && _counter == 0)
        {
            Replace(ref _curSample, sample);
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            modelOutput = (modelOutput + Past(1)) / 2;
            sample = _curSample!;
        }
        else if (_ets.Count == 2)
        {
            modelOutput = (3 * Past(1) - Past(2)) / 2;
        }
        else if (_ets.Count == 3)
        {
            modelOutput = (23 * Past(1) - 16 * Past(2) + 5 * Past(3)) / 12;
        }
        else
        {
            modelOutput = 1.0 / 24 * (55 * Past(1) - 59 * Past(2) + 37 * Past(3) - 9 * Past(4));
        }

        var prevSample = GetPrevSample(sample, timestep, prevTimestep, modelOutput);
        if (_ets.Count == 1 && _counter == 1) Replace(ref _curSample, null);
        _counter++;
        return prevSample;
    }

    /// <summary>
    /// PNDM formula (9): x_{t-d} = sqrt(a_{t-d} / a_t) x_t - (a_{t-d} - a_t) e / (a_t sqrt(1 - a_{t-d}) + sqrt(a_t (1 -
    /// a_t) a_{t-d})), with e converted from v-prediction as e = sqrt(a_t) v + sqrt(1 - a_t) x_t.
    /// </summary>
    /// <summary>The model output <paramref name="back"/> steps back (1 = the newest).</summary>
    private ScalarSafeTensor Past(int back) => _ets[^back];

    private Tensor GetPrevSample(ScalarSafeTensor sample, int timestep, int prevTimestep, ScalarSafeTensor modelOutput)
    {
        double alphaProdT = AlphasCumprodValues[timestep];
        var alphaProdTPrev = prevTimestep >= 0 ? AlphasCumprodValues[prevTimestep] : _finalAlphaCumprod;
        var betaProdT = 1 - alphaProdT;
        var betaProdTPrev = 1 - alphaProdTPrev;

        if (PredictionType == "v_prediction")
            modelOutput = Math.Sqrt(alphaProdT) * modelOutput + Math.Sqrt(betaProdT) * sample;

        // corresponds to (alpha_(t-d) / alpha_t)^(1/2) in formula (9)
        var sampleCoeff = Math.Sqrt(alphaProdTPrev / alphaProdT);
        // corresponds to the denominator e_theta(x_t, t) in formula (9)
        var modelOutputDenomCoeff = alphaProdT * Math.Sqrt(betaProdTPrev)
            + Math.Sqrt(alphaProdT * betaProdT * alphaProdTPrev);
        // full formula (9)
        return sampleCoeff * sample - (alphaProdTPrev - alphaProdT) * modelOutput / modelOutputDenomCoeff;
    }

    public override Tensor AddNoise(Tensor originalSamples, Tensor noise, Tensor timesteps) =>
        AddNoiseByAlphasCumprod(originalSamples, noise, timesteps);

    protected override void DisposeState() => ResetState();
}
