using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>A Hugging Face hub download failed; the message says what to do.</summary>
public class HubException : Exception
{
    public HubException(string message, HttpStatusCode? statusCode = null, Exception? inner = null)
        : base(message, inner) => StatusCode = statusCode;

    /// <summary>The HTTP status that caused the failure, when there was one.</summary>
    public HttpStatusCode? StatusCode { get; internal set; }

    /// <summary>The hub's <c>X-Error-Code</c> (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo...), when it sent one.</summary>
    public string? ErrorCode { get; internal set; }
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

/// <summary>
/// The repository was withdrawn from the hub by its owner (the Stability AI Stable Diffusion 2 family, November 2025)
/// and no complete copy is in the local cache. <see cref="Mirror"/> names a community copy to use instead, when one
/// is known; the engine never switches to it by itself.
/// </summary>
public sealed class HubModelWithdrawnException : HubException
{
    public HubModelWithdrawnException(string repoId, string? mirror, string message, Exception? inner = null)
        : base(message, HttpStatusCode.NotFound, inner)
    {
        RepoId = repoId;
        Mirror = mirror;
    }

    /// <summary>The withdrawn repository id, as asked for.</summary>
    public string RepoId { get; }

    /// <summary>The community mirror to ask for instead, or null when none is known.</summary>
    public string? Mirror { get; }
}

/// <summary>The cache's disk has no room for the download (checked before it starts, or the disk filled up while
/// writing); what was written stays as a partial file and is resumed once there is room.</summary>
public sealed class HubDiskFullException : HubException
{
    public HubDiskFullException(string message, Exception? inner = null) : base(message, null, inner) { }
}

/// <summary>The hub or its CDN sent nothing for longer than the allowed time (HF_HUB_ETAG_TIMEOUT for metadata,
/// HF_HUB_DOWNLOAD_TIMEOUT per read), on every retry.</summary>
public sealed class HubTimeoutException : HubException
{
    public HubTimeoutException(string message, Exception? inner = null) : base(message, null, inner) { }
}

/// <summary>The download server (a CDN, not the hub) refused a link: usually an expired signed link. Retryable with a
/// freshly resolved link; never a licence or token question.</summary>
internal sealed class HubLinkRefusedException : HubException
{
    public HubLinkRefusedException(string message, HttpStatusCode status) : base(message, status) { }
}
