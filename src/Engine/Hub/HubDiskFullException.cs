namespace PSStableDiffusion.Engine.Hub;

/// <summary>The cache's disk has no room for the download (checked before it starts, or the disk filled up while
/// writing); what was written stays as a partial file and is resumed once there is room.</summary>
public sealed class HubDiskFullException : HubException
{
    public HubDiskFullException(string message, Exception? inner = null) : base(message, null, inner) { }
}
