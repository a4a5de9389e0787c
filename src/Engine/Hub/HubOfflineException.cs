namespace PSStableDiffusion.Engine.Hub;

/// <summary>Offline mode (HF_HUB_OFFLINE) is on, or the hub is unreachable, and the cache lacks what
/// is needed.</summary>
public sealed class HubOfflineException : HubException
{
    public HubOfflineException(string message, Exception? inner = null) : base(message, null, inner) { }
}
