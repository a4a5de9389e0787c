using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>Lists the models loaded in this process's engine cache, with the memory they hold and when they were
/// last used.</summary>
[Cmdlet(VerbsCommon.Get, "SDEngine")]
[OutputType(typeof(EngineInfo))]
public sealed class GetSDEngineCommand : SDCmdletBase
{
    #region Parameters

    /// <summary>Only engines whose model path matches this wildcard pattern.</summary>
    [Parameter(Position = 0)]
    [SupportsWildcards]
    public string? Model { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var pattern = Model is null ? null : new WildcardPattern(Model, WildcardOptions.IgnoreCase);
        foreach (var engine in EngineCache.Shared.List())
        {
            if (pattern is null || pattern.IsMatch(engine.Model)) WriteObject(engine);
        }
    }

    #endregion
}
