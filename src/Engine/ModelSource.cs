using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine;

/// <summary>A resolved <c>-Model</c> value: what it is, and its full path (folder, file) or
/// repository id (hub).</summary>
/// <param name="Kind">Folder, single file or hub repository.</param>
/// <param name="Location">The full path (folders without a trailing separator) or the repository id as given.</param>
/// <param name="Value">What the user passed.</param>
public sealed record ModelSource(ModelSourceKind Kind, string Location, string Value);
