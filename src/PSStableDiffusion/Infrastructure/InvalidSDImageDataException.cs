namespace PSStableDiffusion.Infrastructure;

/// <summary>A serialized SDImage that cannot be turned back into one (forged, truncated or edited by hand).</summary>
/// <remarks>An ArgumentException, because PowerShell's deserializer leaves the property bag as it is on those (and
/// InvalidCastException) only: the error then shows where the bag is used, in words that say what is wrong.</remarks>
public sealed class InvalidSDImageDataException : ArgumentException
{
    public InvalidSDImageDataException(string reason, Exception? inner = null)
        : base($"Cannot restore a deserialized SDImage: {reason}.", inner)
    {
    }
}
