using PSStableDiffusion.Engine.Models.Dpt;

namespace PSStableDiffusion.Engine;

/// <summary>
/// Hands out depth estimators from the shared <see cref="EngineCache"/>: a depth model's own (loaded with the model, as
/// New-SDImage loads it, and kept beside its UNet, so that a depth map and then depth-to-image load nothing twice), or
/// a DPT folder's alone (config.json + model.safetensors and a preprocessor_config.json, cached on its own).
/// </summary>
public static class DepthEstimatorStore
{
    /// <summary>Whether <paramref name="source"/> is a DPT folder on its own (no model_index.json; an
    /// estimator there).</summary>
    public static bool IsEstimatorFolder(ModelSource source) =>
        source.Kind == ModelSourceKind.DiffusersFolder
        && !File.Exists(Path.Combine(source.Location, "model_index.json"))
        && DepthEstimator.Locate(source.Location) is { } located
        && Path.GetFullPath(located) == Path.GetFullPath(source.Location);

    /// <summary>A lease on the estimator of the model <paramref name="source"/> names, loading what is not
    /// cached yet.</summary>
    /// <exception cref="InvalidOperationException">The model has no depth estimator (not a depth model, or one without
    /// <c>depth_estimator/</c> or <c>depth_model.*</c> weights).</exception>
    /// <exception cref="DirectoryNotFoundException">A folder that is neither a diffusers model nor a
    /// DPT folder.</exception>
    public static DepthEstimatorLease Acquire(
        ModelSource source, ComputeTarget target, ModelLoadOptions options, Action<string>? log,
        CancellationToken cancellation)
    {
        if (IsEstimatorFolder(source))
        {
            var key = new EngineKey(source.Location, target, "depth-estimator");
            var estimatorLease = EngineCache.Shared.Acquire(key,
                () => DepthEstimator.Load(source.Location, target.DType, target.Device, log), cancellation, log);
            return new DepthEstimatorLease(estimatorLease.Engine, source.Location, estimatorLease);
        }
        if (source.Kind == ModelSourceKind.DiffusersFolder
            && !File.Exists(Path.Combine(source.Location, "model_index.json")))
            throw new DirectoryNotFoundException(
                $"'{source.Location}' is neither a diffusers model folder " +
                $"(model_index.json) nor a DPT depth estimator folder " +
                $"(config.json + {DPTForDepthEstimation.WeightsFileName} + preprocessor_config.json).");

        var lease = ModelStore.Acquire(source, target, options, log, cancellation);
        try
        {
            var model = lease.Engine;
            if (!model.HasDepthEstimator)
                throw new InvalidOperationException(model.Kind == ModelKind.Depth
                    ? $"The depth model '{model.Source}' has no depth estimator: " +
                        $"no depth_estimator folder (diffusers) and no " +
                      "depth_model.* weights (single file). Use the full " +
                      "stable-diffusion-2-depth folder or 512-depth-ema.ckpt, or a DPT folder."
                    : $"The model '{model.Source}' is a {model.KindName} model: " +
                        $"only depth models ship a depth estimator. Pass a depth " +
                      "model (stable-diffusion-2-depth, 512-depth-ema.ckpt) or a DPT folder.");
            return new DepthEstimatorLease(model.GetDepthEstimator(log), model.Source, lease);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }
}
