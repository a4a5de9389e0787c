using System.Management.Automation;
using PSStableDiffusion.Engine.Lora;
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

    /// <summary>Folders to search (with their subfolders) before those of $env:SD_LORA.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? LoraPath { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var folders = LoraCatalog.Folders((LoraPath ?? []).Select(ResolvePath));
        var patterns = (Name ?? ["*"]).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        bool any = false;
        foreach (var file in LoraCatalog.Files(folders))
        {
            if (!patterns.Any(p => p.IsMatch(Path.GetFileNameWithoutExtension(file)))) continue;
            any = true;
            try
            {
                WriteObject(LoraInfo.Read(file));
            }
            catch (Exception e) when (e is not PipelineStoppedException)
            {
                WriteError(ToErrorRecord(e, "InvalidLora", file));
            }
        }
        if (!any && Name is not null && !Name.Any(WildcardPattern.ContainsWildcardCharacters))
            WriteError(new ErrorRecord(new LoraNotFoundException(string.Join(", ", Name), folders), "LoraNotFound",
                ErrorCategory.ObjectNotFound, Name));
    }

    #endregion
}
