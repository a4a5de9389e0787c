using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Frees cached models (all, or those matching -Model / piped from Get-SDEngine). A model in use by another runspace is
/// freed when its current call ends.
/// </summary>
[Cmdlet(VerbsCommon.Clear, "SDEngine", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(EngineInfo))]
public sealed class ClearSDEngineCommand : SDCmdletBase
{
    #region Parameters

    /// <summary>Only engines whose model path matches this wildcard pattern; all when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string? Model { get; set; }

    /// <summary>Write the freed engines.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var pattern = Model is null ? null : new WildcardPattern(Model, WildcardOptions.IgnoreCase);
        // Ask first, on a snapshot: a -Confirm prompt must not hold the cache's lock, or every runspace that loads a
        // model would wait on the user.
        var chosen = EngineCache.Shared.List()
            .Where(engine => pattern is null || pattern.IsMatch(engine.Model))
            .Where(engine => ShouldProcess(
                $"{engine.Model} ({engine.Device}, {engine.Precision}, {engine.MemoryBytes / (1024.0 * 1024):F0} MiB)",
                "Free the cached engine"))
            .ToList();
        IReadOnlyList<EngineInfo> removed;
        try
        {
            removed = chosen.Count == 0 ? [] : EngineCache.Shared.Clear(chosen);
        }
        catch (EngineFreeFailedException e)
        {
            // The cache is consistent (the engines are out of it, the rest freed); only this engine's memory may not
            // have been given back, so the call reports it and goes on.
            WriteError(new ErrorRecord(e, "EngineFreeFailed", ErrorCategory.CloseError, e.Model));
            removed = e.Removed;
        }
        foreach (var engine in removed)
        {
            WriteVerbose($"Freed {engine.Model} on {engine.Device} ({engine.Precision}).");
            if (PassThru) WriteObject(engine);
        }
    }

    #endregion
}
