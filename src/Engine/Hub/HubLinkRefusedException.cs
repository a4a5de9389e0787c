using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>The download server (a CDN, not the hub) refused a link: usually an expired signed link. Retryable with a
/// freshly resolved link; never a licence or token question.</summary>
internal sealed class HubLinkRefusedException : HubException
{
    public HubLinkRefusedException(string message, HttpStatusCode status) : base(message, status) { }
}
