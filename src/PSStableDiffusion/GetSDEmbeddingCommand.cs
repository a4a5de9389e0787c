using System.Management.Automation;
using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.Networks;
using PSStableDiffusion.Engine.Text.Embeddings;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Lists the textual-inversion embeddings the generating cmdlets can use: the files in -Path (folders with their
/// subfolders, or files) and in the folders $env:SD_EMBEDDINGS lists, one object per name, with its vectors, width,
/// hash, and whether it fits the text encoder (1024 wide for SD 2.x).
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDEmbedding")]
[OutputType(typeof(EmbeddingInfo))]
public sealed class GetSDEmbeddingCommand : SDCmdletBase
{
    #region Members

    /// <summary>The width of SD 2.x's text encoder (OpenCLIP ViT-H).</summary>
    private const int Sd2Width = 1024;

    #endregion

    #region Parameters

    /// <summary>Only embeddings whose name matches these wildcard patterns.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    /// <summary>Folders (with their subfolders) or files to list, before those of $env:SD_EMBEDDINGS.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? Path { get; set; }

    /// <summary>The text encoder width an embedding must have to fit (1024: SD 2.x).</summary>
    [Parameter]
    [ValidateRange(1, 65536)]
    public int TextEncoderWidth { get; set; } = Sd2Width;

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        NetworkFileLookup files;
        try
        {
            files = EmbeddingLibrary.FindFiles(Path?.Select(ResolvePath).ToArray());
        }
        catch (NetworkPathNotFoundException e)
        {
            ThrowTerminatingError(new ErrorRecord(
                e, "EmbeddingPathNotFound", ErrorCategory.ObjectNotFound, e.FileName));
            return;
        }
        foreach (var missing in files.MissingFromVariable)
            WriteWarning(
                $"{EmbeddingLibrary.EnvironmentVariable} names '{missing}', which does not exist; it was skipped.");
        foreach (var shadowed in files.Shadowed)
            WriteVerbose($"'{shadowed.Path}' is hidden by an earlier file named '{shadowed.Name}'.");
        var patterns = (Name ?? ["*"]).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        foreach (var file in files.Files.Where(f => patterns.Any(p => p.IsMatch(f.Name))))
        {
            Cancellation.ThrowIfCancellationRequested();
            WriteEmbedding(file);
        }
    }

    #endregion

    #region Private methods

    private void WriteEmbedding(NetworkFile file)
    {
        EmbeddingInfo info;
        try
        {
            info = EmbeddingInfo.Read(file.Path, TextEncoderWidth);
        }
        catch (Exception e) when (e is EmbeddingFormatException or UnsafeCheckpointException or IOException)
        {
            WriteError(ToErrorRecord(e, "InvalidEmbedding", file.Path));
            return;
        }
        if (!info.Fits)
            WriteWarning($"'{file.Path}' has vectors {info.Width} wide, not {TextEncoderWidth}" +
                (info.Width == 768 && TextEncoderWidth == Sd2Width ? " (it was made for SD 1.x)" : "") +
                $": a prompt that names '{info.Name}' fails with EmbeddingWidthMismatch.");
        WriteObject(info);
    }

    #endregion
}
