using PSStableDiffusion.Engine.Models.Dpt;

namespace PSStableDiffusion.Engine;

/// <summary>A lease on a depth estimator: held while it runs, released (not disposed) afterwards; the engine
/// cache owns it.</summary>
public sealed class DepthEstimatorLease : IDisposable
{
    private IDisposable? _lease;

    internal DepthEstimatorLease(DepthEstimator estimator, string modelPath, IDisposable lease)
    {
        Estimator = estimator;
        ModelPath = modelPath;
        _lease = lease;
    }

    public DepthEstimator Estimator { get; }

    /// <summary>The model folder or file the estimator belongs to (the DPT folder itself when it came alone).</summary>
    public string ModelPath { get; }

    public void Dispose() => Interlocked.Exchange(ref _lease, null)?.Dispose();
}
