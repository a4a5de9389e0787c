using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// Lets image parameters take an SDImage, a deserialized SDImage (from a job, a remote session or Import-Clixml), a
/// path (relative, ~, PSDrive) or a FileInfo: the file is read with the module's image reader, so a non-image file or
/// a forged deserialized image fails at binding with a message that names it.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SDImageTransformationAttribute : ArgumentTransformationAttribute
{
    /// <summary>Whether a string or FileInfo is read as an image file (false: only SDImages,
    /// deserialized or not).</summary>
    public bool ReadsFiles { get; set; } = true;

    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        try
        {
            return value switch
            {
                null => null,
                SDImage image => image,
                // An array parameter (New-SDImageGrid -Image $a, $b): each element on its own.
                object[] items => items.Select(item => Transform(engineIntrinsics, item)).ToArray(),
                _ when SDImageSerialization.IsDeserializedImage(inputData) =>
                    SDImageSerialization.Rehydrate((PSObject)inputData!),
                _ when !ReadsFiles => inputData,
                FileInfo file => ImageCodec.Read(file.FullName),
                string path =>
                    ImageCodec.Read(engineIntrinsics.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path)),
                // Anything else is left as it is: the binder then refuses it for this parameter, and a piped object
                // can still bind to another one (such as -LiteralPath by its FullName).
                _ => inputData,
            };
        }
        catch (Exception e) when (e is ImageFormatException or IOException or UnauthorizedAccessException
            or InvalidSDImageDataException)
        {
            throw new ArgumentTransformationMetadataException(e.Message, e);
        }
    }
}
