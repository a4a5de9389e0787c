using System.Net;

namespace PSStableDiffusion.Engine.Hub;

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
