using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;

namespace PSStableDiffusion.Infrastructure;

/// <summary>Reading depth maps: 16-bit PNGs keep their precision, SDImages become 8-bit gray.</summary>
internal static class DepthInput
{
    public static GrayImage Read(object value, SessionState sessionState)
    {
        if (SDImageSerialization.IsDeserializedImage(value))
            return SDImageSerialization.Rehydrate((PSObject)value).ToGray();
        value = value is PSObject wrapped ? wrapped.BaseObject : value;
        return value switch
        {
            SDImage image => image.ToGray(),
            FileInfo file => GrayImage.Load(file.FullName),
            string path => GrayImage.Load(sessionState.Path.GetUnresolvedProviderPathFromPSPath(path)),
            _ =>
                throw new ArgumentException(
                    $"Cannot use a {value.GetType().Name} as a depth map: pass an SDImage, a file path or a FileInfo."),
        };
    }
}
