using System.Management.Automation;
using PSStableDiffusion.Engine;
using PSStableDiffusion.Engine.Imaging;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// How an SDImage crosses a process boundary (Start-Job, Start-ThreadJob's Receive-Job, Invoke-Command, Export-Clixml).
/// PSStableDiffusion.Types.ps1xml tells PowerShell's serializer to write only a few properties, among them
/// <see cref="PngPropertyName"/>: the image as the PNG that Save-SDImage writes, whose chunks carry the whole record.
/// On the receiving side the same file names <see cref="SDImageTypeConverter"/> as the way back, so a
/// "Deserialized.PSStableDiffusion.Engine.SDImage" becomes a full SDImage again: when it is deserialized in a session
/// that has the module, when it binds to an SDImage parameter, or when it is cast to
/// [PSStableDiffusion.Engine.SDImage].
/// </summary>
public static class SDImageSerialization
{
    /// <summary>The type name PowerShell gives the property bag that a serialized SDImage becomes.</summary>
    public const string DeserializedTypeName = "Deserialized." + "PSStableDiffusion.Engine.SDImage";

    /// <summary>The serialized property that holds the PNG bytes (pixels and record).</summary>
    public const string PngPropertyName = "Png";

    // Properties the serializer writes next to the PNG, so a session without the module still sees what the image is.
    // Rehydration checks them against the PNG's record: a bag edited by hand is refused, not half-applied.
    private static readonly (string Name, Func<SDImage, object?> Value)[] CheckedProperties =
    [
        (nameof(SDImage.Width), image => image.Width),
        (nameof(SDImage.Height), image => image.Height),
        (nameof(SDImage.Seed), image => image.Seed),
        (nameof(SDImage.Steps), image => image.Steps),
        (nameof(SDImage.Prompt), image => image.Prompt),
    ];

    /// <summary>The Png code property (types.ps1xml): the image encoded as the module's PNG, record included.</summary>
    public static byte[] GetPng(PSObject instance) =>
        instance.BaseObject is SDImage image
            ? ImageCodec.EncodePng(image)
            : throw new ArgumentException(
                $"The {PngPropertyName} property belongs to SDImage, not {instance.BaseObject?.GetType().FullName}.");

    /// <summary>True for the property bag of a serialized SDImage (whatever it holds: it may be forged
    /// or corrupt).</summary>
    public static bool IsDeserializedImage(object? value) =>
        value is PSObject bag && bag.BaseObject is not SDImage && bag.TypeNames.Contains(DeserializedTypeName);

    /// <summary>Rebuilds the SDImage a serialized one came from: pixels and record from its PNG bytes.</summary>
    /// <exception cref="InvalidSDImageDataException">No PNG bytes, bytes that are not a valid image, a record that
    /// does not fit the pixels, or visible properties that disagree with the record.</exception>
    public static SDImage Rehydrate(PSObject bag)
    {
        var png = PngBytes(bag);
        var sourcePath = PropertyValue(bag, nameof(SDImage.SourcePath)) as string;
        SDImage image;
        try
        {
            image = ImageCodec.Decode(png, sourcePath);
        }
        catch (Exception e) when (e is ImageFormatException or ArgumentException)
        {
            throw new InvalidSDImageDataException($"its PNG bytes are not a valid image: {Reason(e).TrimEnd('.')}", e);
        }
        if (image.Record.Width != image.Width || image.Record.Height != image.Height)
            throw new InvalidSDImageDataException(
                $"its record says {image.Record.Width}x{image.Record.Height} " +
                $"but the PNG is {image.Width}x{image.Height}");
        foreach (var (name, value) in CheckedProperties)
        {
            var shown = PropertyValue(bag, name);
            if (shown is not null && !SameValue(shown, value(image)!))
                throw new InvalidSDImageDataException(
                    $"its {name} property ({shown}) disagrees with the record in its PNG ({value(image)}); " +
                    $"it was altered after serialization. Change a copy with Import-SDImage instead");
        }
        return image;
    }

    private static byte[] PngBytes(PSObject bag)
    {
        var value = PropertyValue(bag, PngPropertyName);
        return value switch
        {
            byte[] bytes when bytes.Length > 0 => bytes,
            null => throw new InvalidSDImageDataException(
                $"it has no {PngPropertyName} property with the image's bytes. Was it " +
                $"serialized by a session without PSStableDiffusion, or with a depth of 0?"),
            _ =>
                throw new InvalidSDImageDataException(
                    $"its {PngPropertyName} property is a {DescribeType(value)}, not PNG bytes"),
        };
    }

    private static object? PropertyValue(PSObject bag, string name)
    {
        var value = bag.Properties[name]?.Value;
        return value is PSObject wrapped ? wrapped.BaseObject : value;
    }

    private static bool SameValue(object shown, object expected) =>
        LanguagePrimitives.TryConvertTo(shown, expected.GetType(), out var converted) && Equals(converted, expected);

    private static string DescribeType(object value) => value is PSCustomObject ? "property bag" : value.GetType().Name;

    private static string Reason(Exception e) => e is ImageFormatException format ? format.Reason : e.Message;
}
