namespace PSStableDiffusion.Engine.Hub;

/// <summary>A downloaded file's size or sha256 does not match what the hub announced; nothing entered
/// the cache.</summary>
public sealed class HubChecksumException : HubException
{
    public HubChecksumException(string message) : base(message) { }
}
