using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>401: the repository needs a token (private or gated), or the token given was rejected.</summary>
public sealed class HubAuthenticationException : HubException
{
    public HubAuthenticationException(string message) : base(message, HttpStatusCode.Unauthorized) { }
}
