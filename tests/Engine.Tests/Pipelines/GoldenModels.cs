using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>Loads each golden case's model once for all the image-pipeline tests.</summary>
public sealed class GoldenModels : IDisposable
{
    private readonly Dictionary<string, StableDiffusionModel> _models = new(StringComparer.Ordinal);

    public StableDiffusionModel Get(string caseName)
    {
        lock (_models)
        {
            if (!_models.TryGetValue(caseName, out var model))
                _models[caseName] = model = DiffusersFolderLoader.Load(Golden.Path(caseName, "model"), ComputeTarget.Cpu32);
            return model;
        }
    }

    public void Dispose()
    {
        foreach (var model in _models.Values) model.Dispose();
    }
}
