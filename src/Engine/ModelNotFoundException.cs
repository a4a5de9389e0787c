using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>
/// A <c>-Model</c> value that names nothing: no folder or file there, and not a hub id. It derives from
/// <see cref="DirectoryNotFoundException"/>, so the cmdlets report it as ModelNotFound.
/// </summary>
public sealed class ModelNotFoundException : DirectoryNotFoundException
{
    public ModelNotFoundException(string value, string message) : base(message) => Value = value;

    /// <summary>The value as the user passed it.</summary>
    public string Value { get; }
}
