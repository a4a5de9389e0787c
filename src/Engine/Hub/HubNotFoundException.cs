using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>404: no such repository, revision or file.</summary>
public sealed class HubNotFoundException : HubException
{
    public HubNotFoundException(string message) : base(message, HttpStatusCode.NotFound) { }
}
