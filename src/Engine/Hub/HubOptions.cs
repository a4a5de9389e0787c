namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Where and how <see cref="HubClient"/> downloads. <see cref="FromEnvironment"/> reads the same variables as
/// Python's huggingface_hub, so both share one cache.
/// </summary>
public sealed record HubOptions
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Hub base URL (<c>HF_ENDPOINT</c>), without a trailing slash.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The hub cache folder holding <c>models--org--name</c> folders.</summary>
    public required string CacheRoot { get; init; }

    /// <summary>Serve from the cache only, never touching the network (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; }

    /// <summary>Token used when a call passes none (<c>HF_TOKEN</c>, else the token file <c>huggingface-cli
    /// login</c> writes).</summary>
    public string? Token { get; init; }

    /// <summary>How long a metadata request (the file list, a file's HEAD) may wait for an answer
    /// (<c>HF_HUB_ETAG_TIMEOUT</c> seconds; 10 as in huggingface_hub).</summary>
    public TimeSpan EtagTimeout { get; init; } = TimeSpan.FromSeconds(DefaultTimeoutSeconds);

    /// <summary>How long one read of a download may wait for bytes before the connection counts as stalled and is
    /// retried (<c>HF_HUB_DOWNLOAD_TIMEOUT</c> seconds; 10 as in huggingface_hub).</summary>
    public TimeSpan DownloadTimeout { get; init; } = TimeSpan.FromSeconds(DefaultTimeoutSeconds);

    private const int DefaultTimeoutSeconds = 10;

    /// <summary>Options from the environment: HF_ENDPOINT, HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME, HF_HUB_OFFLINE,
    /// HF_TOKEN / HF_TOKEN_PATH, HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT.</summary>
    public static HubOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>As <see cref="FromEnvironment()"/>, reading variables through <paramref name="getVariable"/>.</summary>
    public static HubOptions FromEnvironment(Func<string, string?> getVariable)
    {
        var home = HfHome(getVariable);
        var token = NonEmpty(getVariable("HF_TOKEN")) ?? NonEmpty(getVariable("HUGGING_FACE_HUB_TOKEN"));
        if (token is null)
        {
            var tokenPath = ExpandHome(NonEmpty(getVariable("HF_TOKEN_PATH"))) ?? Path.Combine(home, "token");
            try
            {
                if (File.Exists(tokenPath)) token = NonEmpty(File.ReadAllText(tokenPath).Trim());
            }
            catch (IOException) { } // an unreadable token file just means no token
            catch (UnauthorizedAccessException) { }
        }
        return new HubOptions
        {
            Endpoint = (NonEmpty(getVariable("HF_ENDPOINT")) ?? DefaultEndpoint).TrimEnd('/'),
            CacheRoot = ResolveCacheRoot(getVariable),
            Offline = IsTrue(getVariable("HF_HUB_OFFLINE")),
            Token = token,
            EtagTimeout = Seconds(getVariable("HF_HUB_ETAG_TIMEOUT")),
            DownloadTimeout = Seconds(getVariable("HF_HUB_DOWNLOAD_TIMEOUT")),
        };
    }

    // As huggingface_hub: a positive whole number of seconds, anything else (unset, empty, 0) the default.
    private static TimeSpan Seconds(string? value) =>
        TimeSpan.FromSeconds(int.TryParse(value, System.Globalization.NumberStyles.Integer,
                System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0
            ? s : DefaultTimeoutSeconds);

    /// <summary>HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (legacy), else HF_HOME/hub, else
    /// XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (Windows too: %USERPROFILE%\.cache\...).</summary>
    public static string ResolveCacheRoot(Func<string, string?> getVariable) =>
        ExpandHome(NonEmpty(getVariable("HF_HUB_CACHE")))
        ?? ExpandHome(NonEmpty(getVariable("HUGGINGFACE_HUB_CACHE")))
        ?? Path.Combine(HfHome(getVariable), "hub");

    private static string HfHome(Func<string, string?> getVariable) =>
        ExpandHome(NonEmpty(getVariable("HF_HOME")))
        ?? Path.Combine(
            ExpandHome(NonEmpty(getVariable("XDG_CACHE_HOME"))) ?? Path.Combine(UserHome(), ".cache"), "huggingface");

    private static string UserHome() => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);

    private static string? ExpandHome(string? path) =>
        path is not null
            && (path == "~"
                || path.StartsWith("~/", StringComparison.Ordinal) || path.StartsWith("~\\", StringComparison.Ordinal))
            ? Path.Combine(UserHome(), path.Length > 2 ? path[2..] : "")
            : path;

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static bool IsTrue(string? value) =>
        value?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
}
