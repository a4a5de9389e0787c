using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Lists the models on disk that -Model takes, without loading them: the diffusers snapshots in the Hugging Face hub
/// cache, and the diffusers folders and single-file checkpoints at (or directly inside) the given paths. Each comes
/// with its variant, prediction type, default size, weights dtype and size on disk, read from
/// configs and weight headers.
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDModel")]
[OutputType(typeof(ModelDescription))]
public sealed class GetSDModelCommand : SDCmdletBase
{
    #region Parameters

    /// <summary>
    /// Diffusers folders, checkpoint files, or folders holding them (also a hub cache or one <c>models--org--name</c>
    /// folder). Wildcards are expanded. Without it, the hub cache is listed.
    /// </summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [SupportsWildcards]
    public string[]? Path { get; set; }

    /// <summary>Only models whose name (hub id, folder or file name) matches one of these wildcard patterns.</summary>
    [Parameter]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>List the hub cache as well as the given paths (it is listed anyway when no path is given).</summary>
    [Parameter]
    public SwitchParameter HubCache { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        if (Path is null) return; // the hub cache is listed once, in EndProcessing
        foreach (var path in Path)
        {
            foreach (var resolved in ExpandPath(path))
            {
                IReadOnlyList<ModelDescription> models;
                try
                {
                    models = ModelCatalog.Find(resolved.FullPath);
                }
                catch (Exception e) when (e is IOException or NotSupportedException or UnauthorizedAccessException)
                {
                    // A wildcard may match files that are no models; only a path named outright is an error.
                    if (!resolved.FromWildcard) WriteError(ToErrorRecord(e, "GetModelFailed", path));
                    continue;
                }
                WriteModels(models);
            }
        }
    }

    protected override void EndProcessing()
    {
        if (Path is not null && !HubCache) return;
        var cacheRoot = Engine.Hub.HubOptions.ResolveCacheRoot(Environment.GetEnvironmentVariable);
        WriteVerbose($"Hub cache: {cacheRoot}{(Directory.Exists(cacheRoot) ? "" : " (does not exist yet)")}.");
        WriteModels(ModelCatalog.ListHubCache(cacheRoot));
    }

    #endregion

    #region Private methods

    private void WriteModels(IEnumerable<ModelDescription> models)
    {
        var patterns = Name?.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        foreach (var model in models)
        {
            if (patterns is not null && !patterns.Any(p => p.IsMatch(model.Name))) continue;
            if (model.Error is not null)
                WriteWarning(
                    model.Error.Contains(model.Path, StringComparison.Ordinal)
                        ? model.Error : $"{model.Path}: {model.Error}");
            foreach (var note in model.Notes) WriteVerbose($"{model.Name}: {note}");
            WriteObject(model);
        }
    }

    /// <summary>File-system paths for one -Path value: wildcards expanded (a pattern matching nothing is
    /// an error).</summary>
    private IEnumerable<(string FullPath, bool FromWildcard)> ExpandPath(string path)
    {
        if (!WildcardPattern.ContainsWildcardCharacters(path))
        {
            var full = ResolvePath(path);
            if (!Directory.Exists(full) && !File.Exists(full))
            {
                WriteError(ToErrorRecord(
                    new DirectoryNotFoundException($"No model folder or checkpoint file at '{full}'."), "ModelNotFound",
                    path));
                return Array.Empty<(string, bool)>();
            }
            return new[] { (full, false) };
        }
        try
        {
            var matches = GetResolvedProviderPathFromPSPath(path, out var provider);
            if (provider.Name != "FileSystem")
                throw new NotSupportedException(
                    $"'{path}' is on the {provider.Name} provider; models are files or folders.");
            return matches.Select(m => (m, true)).ToList();
        }
        catch (ItemNotFoundException e)
        {
            WriteError(ToErrorRecord(new DirectoryNotFoundException(e.Message, e), "ModelNotFound", path));
        }
        catch (NotSupportedException e)
        {
            WriteError(ToErrorRecord(e, "GetModelFailed", path));
        }
        return Array.Empty<(string, bool)>();
    }

    #endregion
}
