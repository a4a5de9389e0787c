using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Saves images as PNG files that carry their generation record (an AUTOMATIC1111 "parameters" text chunk and the full
/// record as JSON). The path may be a template such as <c>out/{Seed}-{Index}.png</c> or a folder. Each file is written
/// atomically (a temporary file, then a rename), so no half-written file is ever left behind.
/// </summary>
[Cmdlet(VerbsData.Save, "SDImage", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class SaveSDImageCommand : SDCmdletBase
{
    #region Members

    private readonly HashSet<string> _writtenThisCall = new(
        OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase);

    #endregion

    #region Parameters

    /// <summary>The image to save.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [SDImageTransformation(ReadsFiles = false)]
    [ValidateNotNull]
    public SDImage? Image { get; set; }

    /// <summary>A .png file path, a template with {Seed}, {Index}, {Prompt}, … tokens, or an existing folder.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Overwrite existing files.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var image = Image!;
        string target;
        try
        {
            target = TargetPath(image);
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(new ErrorRecord(e, "InvalidPathTemplate", ErrorCategory.InvalidArgument, Path));
            return;
        }

        if (!target.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            WriteError(new ErrorRecord(
                new ArgumentException(
                    $"'{target}' does not end in .png: images are saved as PNG, which keeps the generation record."),
                "UnsupportedImageFormat", ErrorCategory.InvalidArgument, target));
            return;
        }
        if (!_writtenThisCall.Add(target) && !Force)
        {
            WriteError(new ErrorRecord(
                new IOException(
                    $"'{target}' was already written by this command; add {{Index}} " +
                    $"or {{Seed}} to the path template so each image gets its own file."),
                "DuplicateOutputPath", ErrorCategory.ResourceExists, target));
            return;
        }
        if (File.Exists(target) && !Force)
        {
            WriteError(new ErrorRecord(new IOException($"'{target}' exists. Use -Force to overwrite it."),
                "FileExists", ErrorCategory.ResourceExists, target));
            return;
        }
        if (!ShouldProcess(target, "Save image")) return;

        try
        {
            var folder = System.IO.Path.GetDirectoryName(target);
            if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
            image.Save(target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(ToErrorRecord(e, "SaveFailed", target));
            return;
        }
        WriteObject(new FileInfo(target));
    }

    #endregion

    #region Private methods

    private string TargetPath(SDImage image)
    {
        var template = Path;
        if (Path.EndsWith('/') || Path.EndsWith('\\') || Directory.Exists(ResolvePath(Path)))
            template = System.IO.Path.Combine(Path, OutputPathTemplate.DefaultFileName);
        // Tokens may stand in folder names too ('out/{Model}/{Seed}.png'); their values never hold separators.
        return ResolvePath(OutputPathTemplate.HasTokens(template)
            ? OutputPathTemplate.Expand(template, image, DateTimeOffset.Now)
            : template);
    }

    #endregion
}
