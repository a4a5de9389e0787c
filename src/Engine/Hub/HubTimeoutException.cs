namespace PSStableDiffusion.Engine.Hub;

/// <summary>The hub or its CDN sent nothing for longer than the allowed time (HF_HUB_ETAG_TIMEOUT for metadata,
/// HF_HUB_DOWNLOAD_TIMEOUT per read), on every retry.</summary>
public sealed class HubTimeoutException : HubException
{
    public HubTimeoutException(string message, Exception? inner = null) : base(message, null, inner) { }
}
