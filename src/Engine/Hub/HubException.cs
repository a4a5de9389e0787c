using System.Net;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>A Hugging Face hub download failed; the message says what to do.</summary>
public class HubException : Exception
{
    public HubException(string message, HttpStatusCode? statusCode = null, Exception? inner = null)
        : base(message, inner) => StatusCode = statusCode;

    /// <summary>The HTTP status that caused the failure, when there was one.</summary>
    public HttpStatusCode? StatusCode { get; internal set; }

    /// <summary>The hub's <c>X-Error-Code</c> (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo...), when
    /// it sent one.</summary>
    public string? ErrorCode { get; internal set; }
}
