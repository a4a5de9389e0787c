using System.Management.Automation;
using PSStableDiffusion.Engine;

namespace PSStableDiffusion.Infrastructure;

/// <summary>
/// Converts the property bag of a serialized SDImage back to an SDImage (registered for SDImage in
/// PSStableDiffusion.Types.ps1xml, and named there as the target of deserialization).
/// </summary>
public sealed class SDImageTypeConverter : PSTypeConverter
{
    public override bool CanConvertFrom(PSObject sourceValue, Type destinationType) =>
        destinationType == typeof(SDImage) && SDImageSerialization.IsDeserializedImage(sourceValue);

    public override object ConvertFrom(
        PSObject sourceValue, Type destinationType, IFormatProvider formatProvider, bool ignoreCase) =>
        SDImageSerialization.Rehydrate(sourceValue);

    public override bool CanConvertFrom(object sourceValue, Type destinationType) =>
        sourceValue is PSObject bag && CanConvertFrom(bag, destinationType);

    public override object ConvertFrom(
        object sourceValue, Type destinationType, IFormatProvider formatProvider, bool ignoreCase) =>
        SDImageSerialization.Rehydrate((PSObject)sourceValue);

    public override bool CanConvertTo(object sourceValue, Type destinationType) => false;

    public override object ConvertTo(
        object sourceValue, Type destinationType, IFormatProvider formatProvider, bool ignoreCase) =>
        throw new PSInvalidCastException($"An SDImage cannot be converted to {destinationType}.");
}
