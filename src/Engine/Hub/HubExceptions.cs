using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>A Hugging Face hub download failed; the message says what to do.</summary>
public class HubException : Exception
{
    public HubException(string message, HttpStatusCode? statusCode = null, Exception? inner = null)
        : base(message, inner) => StatusCode = statusCode;

    /// <summary>The HTTP status that caused the failure, when there was one.</summary>
    public HttpStatusCode? StatusCode { get; }
}

/// <summary>401: the repository needs a token (private or gated), or the token given was rejected.</summary>
public sealed class HubAuthenticationException : HubException
{
    public HubAuthenticationException(string message) : base(message, HttpStatusCode.Unauthorized) { }
}

/// <summary>403: the token's account may not read the repository (usually a gated model whose licence was not accepted).</summary>
public sealed class HubAccessDeniedException : HubException
{
    public HubAccessDeniedException(string message) : base(message, HttpStatusCode.Forbidden) { }
}

/// <summary>404: no such repository, revision or file.</summary>
public sealed class HubNotFoundException : HubException
{
    public HubNotFoundException(string message) : base(message, HttpStatusCode.NotFound) { }
}

/// <summary>Offline mode (HF_HUB_OFFLINE) is on, or the hub is unreachable, and the cache lacks what is needed.</summary>
public sealed class HubOfflineException : HubException
{
    public HubOfflineException(string message, Exception? inner = null) : base(message, null, inner) { }
}

/// <summary>A downloaded file's size or sha256 does not match what the hub announced; nothing entered the cache.</summary>
public sealed class HubChecksumException : HubException
{
    public HubChecksumException(string message) : base(message) { }
}
