using System.Collections.ObjectModel;
using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Reads images back into SDImage objects: our PNGs with their full record, AUTOMATIC1111 PNGs with the record parsed
/// from their "parameters" text, and any other PNG/JPEG/WebP/BMP with an empty record.
/// </summary>
[Cmdlet(VerbsData.Import, "SDImage", DefaultParameterSetName = PathSet)]
[OutputType(typeof(SDImage))]
public sealed class ImportSDImageCommand : SDCmdletBase
{
    #region Members

    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    #endregion

    #region Parameters

    /// <summary>Image files; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = Array.Empty<string>();

    /// <summary>Image files, taken literally (no wildcards); binds FileInfo objects from Get-ChildItem.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = Array.Empty<string>();

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        foreach (var file in ResolveFiles())
        {
            Cancellation.ThrowIfCancellationRequested();
            try
            {
                WriteObject(ImageCodec.Read(file));
            }
            catch (Exception e) when (e is ImageFormatException or IOException or UnauthorizedAccessException)
            {
                WriteError(ToErrorRecord(e, "ImportFailed", file));
            }
        }
    }

    #endregion

    #region Private methods

    private IEnumerable<string> ResolveFiles()
    {
        if (ParameterSetName == LiteralPathSet)
        {
            foreach (var path in LiteralPath)
            {
                var resolved = ResolvePath(path);
                if (File.Exists(resolved)) yield return resolved;
                else WriteError(new ErrorRecord(
                    new FileNotFoundException($"Image file '{resolved}' does not exist.", resolved),
                    "FileNotFound", ErrorCategory.ObjectNotFound, path));
            }
            yield break;
        }
        foreach (var path in Path)
        {
            Collection<string> resolved;
            try
            {
                resolved = GetResolvedProviderPathFromPSPath(path, out _);
            }
            catch (ItemNotFoundException e)
            {
                WriteError(new ErrorRecord(
                    new FileNotFoundException(e.Message, path, e), "FileNotFound", ErrorCategory.ObjectNotFound, path));
                continue;
            }
            foreach (var file in resolved)
            {
                if (File.Exists(file)) yield return file;
                else if (!WildcardPattern.ContainsWildcardCharacters(path))
                    WriteError(new ErrorRecord(
                        new FileNotFoundException($"'{file}' is not a file.", file), "FileNotFound",
                        ErrorCategory.ObjectNotFound, path));
            }
        }
    }

    #endregion
}
