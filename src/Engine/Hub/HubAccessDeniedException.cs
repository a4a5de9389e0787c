using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>403: the token's account may not read the repository (usually a gated model whose licence was not
/// accepted).</summary>
public sealed class HubAccessDeniedException : HubException
{
    public HubAccessDeniedException(string message) : base(message, HttpStatusCode.Forbidden) { }
}
