using TorchSharp;
using TorchSharp.Modules;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>A module of our own whose parameters <see cref="ModuleParameters"/> may replace.</summary>
public interface IReplaceableParameters
{
    bool CanReplace(string name);

    /// <summary>Makes <paramref name="parameter"/> the module's parameter <paramref name="name"/>, disposing
    /// the old one.</summary>
    void Replace(string name, Parameter parameter);
}
