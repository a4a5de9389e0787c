using System.Management.Automation;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Networks;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Lists the LoRA files in the -LoraPath folders and the SD_LORA folders: name, format, rank, alpha, the parts they
/// change, the model family they fit and their short hash. The objects can be passed to -Lora.
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDLora")]
[OutputType(typeof(LoraInfo))]
public sealed class GetSDLoraCommand : SDCmdletBase
{
    #region Parameters

    /// <summary>Only LoRAs whose name matches these wildcard patterns.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true)]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Folders (with their subfolders) or files to list, before those of $env:SD_LORA.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? LoraPath { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        NetworkFileLookup files;
        try
        {
            files = LoraFile.FindFiles(LoraPath?.Select(ResolvePath).ToArray());
        }
        catch (NetworkPathNotFoundException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "LoraPathNotFound", ErrorCategory.ObjectNotFound, e.FileName));
            return;
        }
        foreach (var missing in files.MissingFromVariable)
            WriteWarning($"{LoraFile.EnvironmentVariable} names '{missing}', which does not exist; it was skipped.");
        foreach (var shadowed in files.Shadowed)
            WriteVerbose($"'{shadowed.Path}' is hidden by an earlier file named '{shadowed.Name}'.");
        var patterns = (Name ?? ["*"]).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        bool any = false;
        foreach (var file in files.Files.Where(f => patterns.Any(p => p.IsMatch(f.Name))))
        {
            Cancellation.ThrowIfCancellationRequested();
            any = true;
            try
            {
                WriteObject(LoraInfo.Read(file.Path));
            }
            catch (Exception e) when (e is not PipelineStoppedException)
            {
                WriteError(ToErrorRecord(e, "InvalidLora", file.Path));
            }
        }
        if (!any && Name is not null && !Name.Any(WildcardPattern.ContainsWildcardCharacters))
            WriteError(new ErrorRecord(
                new LoraNotFoundException(string.Join(", ", Name), files.Searched), "LoraNotFound",
                ErrorCategory.ObjectNotFound, Name));
    }

    #endregion
}
