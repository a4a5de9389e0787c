using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Downloads the parts of a diffusers repository the engine needs into the Hugging Face cache (shared with Python's
/// huggingface_hub), speaking the hub's protocol: <c>GET /api/models/{repo}/revision/{rev}</c> for the commit and
/// file list, then per missing file <c>HEAD /{repo}/resolve/{commit}/{path}</c> (redirects to the CDN not followed;
/// the etag, size and CDN location come from the headers) and a <c>GET</c> resumed with <c>Range</c> into
/// <c>blobs/{etag}.incomplete</c>. LFS files are checked against their sha256 before they enter <c>blobs/</c>.
/// </summary>
/// <remarks>
/// Requests on a repeated call: none when offline or when <c>revision</c> is a commit hash whose snapshot is complete;
/// exactly one (the file-list request, to learn whether the branch moved) for a branch or tag whose snapshot is
/// complete. When the hub cannot be reached, a complete cached snapshot of the last known commit is used.
/// </remarks>
public sealed class HubClient : IDisposable
{
    private const int ChunkSize = 1 << 20;
    private const int MaxAttemptsPerFile = 5;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan LockPatience = TimeSpan.FromMinutes(30);

    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    public HubClient(HubOptions? options = null, HttpMessageHandler? handler = null)
    {
        Options = options ?? HubOptions.FromEnvironment();
        _endpoint = new Uri(Options.Endpoint.TrimEnd('/') + "/");
        // Redirects are followed by hand: a HEAD must stop at the CDN redirect, and a token must not follow the
        // request to another host.
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(30),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public HubOptions Options { get; }

    /// <summary>Synchronous <see cref="DownloadAsync"/>.</summary>
    public string Download(string repoId, string revision = "main", string? variant = null, string? token = null,
        IProgress<HubProgress>? progress = null, CancellationToken cancellation = default) =>
        DownloadAsync(repoId, revision, variant, token, progress, cancellation).GetAwaiter().GetResult();

    /// <summary>
    /// Makes sure the cache holds what a pipeline needs from <paramref name="repoId"/> at <paramref name="revision"/>
    /// (a branch, tag or commit) and returns the snapshot folder, a diffusers model folder. <paramref name="variant"/>
    /// (e.g. <c>fp16</c>) prefers <c>*.{variant}.safetensors</c> weights. <paramref name="token"/> overrides
    /// <see cref="HubOptions.Token"/>. Cancelling leaves partial files to resume next time.
    /// </summary>
    public async Task<string> DownloadAsync(string repoId, string revision = "main", string? variant = null,
        string? token = null, IProgress<HubProgress>? progress = null, CancellationToken cancellation = default)
    {
        HubCache.ValidateRevision(revision);
        var cache = new HubCache(Options.CacheRoot, repoId);
        token ??= Options.Token;

        if (Options.Offline)
            return CompleteSnapshot(cache, revision, variant) ?? throw new HubOfflineException(
                $"HF_HUB_OFFLINE is set and '{repoId}' at " +
                $"'{revision}'{VariantText(variant)} is not complete in the cache " +
                $"'{Options.CacheRoot}'. Download it once online (unset " +
                $"HF_HUB_OFFLINE), or point HF_HUB_CACHE at a cache that has it.");

        if (HubCache.IsCommitHash(revision) && CompleteSnapshot(cache, revision, variant) is { } pinned) return pinned;

        RepoInfo info;
        try
        {
            info = await GetRepoInfoAsync(repoId, revision, token, cancellation).ConfigureAwait(false);
        }
        catch (Exception e) when (IsRepoInfoFailure(e) && !cancellation.IsCancellationRequested)
        {
            // As huggingface_hub's snapshot_download: any failure of the file-list request falls back to a complete
            // cached snapshot, except a revision the hub says does not exist.
            if (e is HubNotFoundException { ErrorCode: "RevisionNotFound" }) throw;
            if (CompleteSnapshot(cache, revision, variant) is { } cached)
            {
                Warning?.Invoke(
                    $"Using the cached snapshot of '{repoId}' at '{revision}' ('{cached}'): " +
                    FallbackReason(repoId, e));
                return cached;
            }
            throw NoCacheFailure(repoId, revision, e);
        }
        var commit = info.Sha;
        var state = new TransferState(progress);
        // model_index.json first: it says which components, hence which files, are needed.
        if (!info.Files.Contains(DiffusersFileSelection.ModelIndex))
            throw new HubNotFoundException(
                $"'{repoId}' at '{revision}' has no model_index.json: it is not a diffusers pipeline repository.");
        await EnsureFilesAsync(
            cache, commit, new[] { DiffusersFileSelection.ModelIndex }, token, state,
            cancellation).ConfigureAwait(false);
        var modelIndex = await File.ReadAllTextAsync(
            cache.SnapshotFile(commit, DiffusersFileSelection.ModelIndex), cancellation).ConfigureAwait(false);
        var wanted = DiffusersFileSelection.Select(info.Files, modelIndex, variant);
        await EnsureFilesAsync(cache, commit, wanted, token, state, cancellation).ConfigureAwait(false);
        cache.WriteRef(revision, commit);
        return cache.SnapshotFolder(commit);
    }

    private static string VariantText(string? variant) => variant is null ? "" : $" (variant {variant})";

    /// <summary>Called with a message when the hub could not be asked and the cache was used instead.</summary>
    public Action<string>? Warning { get; set; }

    private static bool IsRepoInfoFailure(Exception e) =>
        e is HubException or HttpRequestException or IOException or OperationCanceledException;

    private static bool IsRepoGone(Exception e) =>
        e is HubNotFoundException { ErrorCode: "RepoNotFound" } or HubAuthenticationException;

    private string FallbackReason(string repoId, Exception e) => e switch
    {
        _ when IsRepoGone(e) && WithdrawnModels.IsWithdrawn(repoId) =>
            $"the hub no longer has this repository (withdrawn by its owner in November 2025){MirrorHint(repoId)}.",
        HubTimeoutException =>
            $"the hub did not answer within {Options.EtagTimeout.TotalSeconds:F0} s (HF_HUB_ETAG_TIMEOUT).",
        HubException { StatusCode: { } status } => $"the hub answered {(int)status} ({e.Message})",
        _ => $"the hub could not be reached ({e.Message}).",
    };

    private static string MirrorHint(string repoId) => WithdrawnModels.Mirror(repoId) is { } mirror
        ? $"; a community copy is '{mirror}' ({WithdrawnModels.ModelCardUrl(mirror)})"
        : "";

    /// <summary>The error for a failed file-list request with nothing usable in the cache.</summary>
    private Exception NoCacheFailure(string repoId, string revision, Exception e)
    {
        if (IsRepoGone(e) && WithdrawnModels.IsWithdrawn(repoId))
        {
            var mirror = WithdrawnModels.Mirror(repoId);
            return new HubModelWithdrawnException(repoId, mirror,
                $"'{repoId}' was withdrawn from the Hugging Face hub by " +
                $"its owner (Stability AI removed its Stable Diffusion 2 " +
                $"family in November 2025) and is not complete in the cache '{Options.CacheRoot}'. " +
                (mirror is null
                    ? "No community mirror of it is known: load a local copy " +
                        "(a diffusers folder or the original checkpoint file)."
                    : $"A community mirror holds a copy: load '{mirror}' instead " +
                        $"({WithdrawnModels.ModelCardUrl(mirror)}). " +
                      "It is a community copy, not Stability AI's; its weights are " +
                      "checked against the published sums of the release when loaded."), e);
        }
        return e switch
        {
            HubException => e,
            OperationCanceledException => new HubTimeoutException(
                $"The hub {Options.Endpoint} did not answer within " +
                $"{Options.EtagTimeout.TotalSeconds:F0} s (HF_HUB_ETAG_TIMEOUT) and " +
                $"'{repoId}' at '{revision}' is not complete in the cache " +
                $"'{Options.CacheRoot}'. Check the network (or HF_ENDPOINT).", e),
            _ => new HubOfflineException(
                $"Cannot reach {Options.Endpoint} ({e.Message}) and " +
                $"'{repoId}' at '{revision}' is not complete in the cache " +
                $"'{Options.CacheRoot}'. Check the network (or HF_ENDPOINT).", e),
        };
    }

    /// <summary>The snapshot folder when the cache alone holds everything needed for this revision,
    /// else null.</summary>
    private static string? CompleteSnapshot(HubCache cache, string revision, string? variant)
    {
        var commit = cache.ResolveCommit(revision);
        if (commit is null) return null;
        var files = cache.SnapshotFiles(commit);
        if (!files.Contains(DiffusersFileSelection.ModelIndex)) return null;
        try
        {
            var modelIndex = File.ReadAllText(cache.SnapshotFile(commit, DiffusersFileSelection.ModelIndex));
            // Selecting from what is present fails exactly when a component lacks its config or weights.
            DiffusersFileSelection.Select(files, modelIndex, variant, DiffusersFileSelection.EngineComponents);
        }
        catch (Exception e) when (e is HubNotFoundException or JsonException)
        {
            return null;
        }
        return cache.SnapshotFolder(commit);
    }

    private sealed record RepoInfo(string Sha, HashSet<string> Files);

    /// <summary>A file to fetch: its cache name (etag), size, whether it is an LFS file (sha256 etag, checked), and
    /// whether its content comes from a link the hub redirects to (expiring CDN links are resolved again before each
    /// attempt).</summary>
    private sealed record FileMetadata(
        string Path, string Etag, long Size, bool IsLfs, Uri DownloadUri, bool Redirected);

    private async Task<RepoInfo> GetRepoInfoAsync(string repoId, string revision, string? token, CancellationToken ct)
    {
        var uri = new Uri(_endpoint, $"api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}");
        var json = await WithTimeoutAsync(
            Options.EtagTimeout, "HF_HUB_ETAG_TIMEOUT", $"the file list of '{repoId}'", async timed =>
        {
            using var response = await SendAsync(
                HttpMethod.Get, uri, token, null, followAbsoluteRedirects: true, timed).ConfigureAwait(false);
            await ThrowIfFailedAsync(response, repoId, revision, null, token).ConfigureAwait(false);
            return await response.Content.ReadAsStringAsync(timed).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var sha = doc.RootElement.GetProperty("sha").GetString();
            if (sha is null || !HubCache.IsCommitHash(sha))
                throw new HubException($"The hub returned '{sha}' as the commit of '{repoId}'.");
            var files = new HashSet<string>(StringComparer.Ordinal);
            if (doc.RootElement.TryGetProperty("siblings", out var siblings))
                foreach (var sibling in siblings.EnumerateArray())
                    if (sibling.TryGetProperty("rfilename", out var name) && name.GetString() is { } f) files.Add(f);
            return new RepoInfo(sha, files);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new HubException($"Unexpected reply from {uri}: {e.Message}", inner: e);
        }
    }

    /// <summary>Runs <paramref name="work"/> with a deadline; running past it is a <see cref="HubTimeoutException"/>
    /// (the caller's own cancellation stays an <see cref="OperationCanceledException"/>).</summary>
    private static async Task<T> WithTimeoutAsync<T>(TimeSpan timeout, string variable, string what,
        Func<CancellationToken, Task<T>> work, CancellationToken ct)
    {
        using var timed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timed.CancelAfter(timeout);
        try
        {
            return await work(timed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new HubTimeoutException($"No answer for {what} within {timeout.TotalSeconds:F0} s ({variable}).", e);
        }
    }

    private async Task EnsureFilesAsync(HubCache cache, string commit, IReadOnlyList<string> paths, string? token,
        TransferState state, CancellationToken ct)
    {
        var missing = paths.Where(p => !HubCache.IsPresent(cache.SnapshotFile(commit, p))).ToList();
        if (missing.Count == 0) return;
        // HEAD everything first so progress knows the total and the disk can be checked; the links these HEADs
        // return are not kept (they expire), each file is resolved again right before it is fetched.
        var metadata = new List<FileMetadata>();
        foreach (var path in missing)
            metadata.Add(await HeadAsync(cache.RepoId, commit, path, token, ct).ConfigureAwait(false));
        var toFetch = metadata.Where(m => !File.Exists(cache.BlobPath(m.Etag))).ToList();
        CheckFreeSpace(cache, toFetch);
        state.BytesTotal += toFetch.Sum(m => m.Size);
        foreach (var file in metadata)
        {
            ct.ThrowIfCancellationRequested();
            var blob = cache.BlobPath(file.Etag);
            if (!File.Exists(blob))
                await DownloadBlobAsync(cache, commit, file, token, state, ct).ConfigureAwait(false);
            cache.LinkSnapshotFile(commit, file.Path, file.Etag, AllowSymlinks);
        }
    }

    /// <summary>False to place files as on Windows without symlink rights (hard link, else move), on any
    /// OS (tests).</summary>
    internal bool AllowSymlinks { get; set; } = true;

    /// <summary>Free bytes on the volume holding a folder, or null when the OS cannot tell (tests
    /// substitute it).</summary>
    internal Func<string, long?> FreeSpace { get; set; } = DefaultFreeSpace;

    /// <summary>Opens a blob's partial file for writing (tests substitute a file system that fills up).</summary>
    internal Func<string, FileStream> OpenPartialFile { get; set; } =
        path => new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16);

    private static long? DefaultFreeSpace(string folder)
    {
        try
        {
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Refuses to start when the bytes still to fetch (less what partial files already hold) exceed the
    /// free space of the cache's disk.</summary>
    private void CheckFreeSpace(HubCache cache, IReadOnlyList<FileMetadata> toFetch)
    {
        if (toFetch.Count == 0) return;
        var blobs = Path.Combine(cache.RepoFolder, "blobs");
        Directory.CreateDirectory(blobs);
        long needed = toFetch.Sum(m =>
        {
            var partial = new FileInfo(cache.BlobPath(m.Etag) + ".incomplete");
            return m.Size - (partial.Exists ? Math.Min(partial.Length, m.Size) : 0);
        });
        if (FreeSpace(blobs) is { } free && free < needed)
            throw new HubDiskFullException(
                $"Not enough disk space for '{cache.RepoId}': {needed / 1048576.0:F1} MiB to download, " +
                $"{free / 1048576.0:F1} MiB free " +
                $"in '{blobs}'. Free some space, or point HF_HUB_CACHE " +
                $"(or HF_HOME) at a larger disk; nothing was downloaded.");
    }

    private async Task<FileMetadata> HeadAsync(
        string repoId, string commit, string path, string? token, CancellationToken ct)
    {
        var uri = ResolveUri(repoId, commit, path);
        return await WithTimeoutAsync(
            Options.EtagTimeout, "HF_HUB_ETAG_TIMEOUT", $"the metadata of '{path}'", async timed =>
        {
            using var response = await SendAsync(
                HttpMethod.Head, uri, token, null, followAbsoluteRedirects: false, timed).ConfigureAwait(false);
            if (!IsRedirect(response.StatusCode))
                await ThrowIfFailedAsync(response, repoId, commit, path, token).ConfigureAwait(false);
            return ReadMetadata(response, repoId, path, uri);
        }, ct).ConfigureAwait(false);
    }

    private static FileMetadata ReadMetadata(HttpResponseMessage response, string repoId, string path, Uri uri)
    {
        var linkedEtag = Header(response, "X-Linked-Etag");
        var etag = NormalizeEtag(linkedEtag ?? response.Headers.ETag?.Tag ?? Header(response, "ETag"))
            ?? throw new HubException(
                $"The hub sent no ETag for '{path}' of '{repoId}': cannot place it in the cache.");
        if (etag.IndexOfAny(new[] { '/', '\\', '.', ':' }) >= 0 || etag.Length > 128)
            throw new HubException($"The hub sent an unusable ETag '{etag}' for '{path}'.");
        var sizeText = Header(response, "X-Linked-Size");
        long size = sizeText is not null && long.TryParse(sizeText, out var linked) ? linked
            : response.Content.Headers.ContentLength
                ?? throw new HubException($"The hub sent no size for '{path}' of '{repoId}'.");
        bool redirected = IsRedirect(response.StatusCode) && response.Headers.Location is not null;
        var download = redirected
            ? (response.Headers.Location!.IsAbsoluteUri
                ? response.Headers.Location
                : new Uri(uri, response.Headers.Location))
            : uri;
        return new FileMetadata(path, etag, size, IsLfs: linkedEtag is not null, download, redirected);
    }

    /// <summary>The link to fetch <paramref name="file"/> from now: for a file the hub redirects (LFS files to the
    /// CDN), a fresh HEAD, since the CDN's signed links expire (X-Amz-Expires=3600).</summary>
    private async Task<Uri> FreshDownloadUriAsync(
        string repoId, string commit, FileMetadata file, string? token, CancellationToken ct)
    {
        if (!file.Redirected) return file.DownloadUri;
        var now = await HeadAsync(repoId, commit, file.Path, token, ct).ConfigureAwait(false);
        if (now.Etag != file.Etag || now.Size != file.Size)
            throw new HubException(
                $"'{file.Path}' of '{repoId}' changed on the hub during the download (commit {commit}); retry.");
        return now.DownloadUri;
    }

    private Uri ResolveUri(string repoId, string revision, string path) =>
        new(
            _endpoint,
            $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/" +
            string.Join('/', path.Split('/').Select(Uri.EscapeDataString)));

    private async Task DownloadBlobAsync(
        HubCache cache, string commit, FileMetadata file, string? token, TransferState state, CancellationToken ct)
    {
        var blob = cache.BlobPath(file.Etag);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        using var fileLock = await AcquireLockAsync(cache.LockPath(file.Etag), ct).ConfigureAwait(false);
        if (File.Exists(blob)) return; // another process finished it while we waited
        var incomplete = blob + ".incomplete";
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var output = OpenPartialFile(incomplete))
        {
            if (output.Length > file.Size) output.SetLength(0);
            long done = await HashExistingAsync(output, hash, ct).ConfigureAwait(false);
            state.StartFile(file.Path, file.Size, done);
            await FetchWithRetriesAsync(
                cache.RepoId, commit, file, token, output, hash, done, state, ct).ConfigureAwait(false);
        }
        VerifyAndPublish(file, incomplete, blob, hash);
    }

    /// <summary>Fetches the rest of <paramref name="file"/> into <paramref name="output"/>, resuming with Range after a
    /// broken, stalled or refused connection. Each attempt resolves the link afresh; the attempt budget starts over
    /// whenever an attempt brought bytes, so a slow but moving line never gives up. A full disk
    /// stops at once.</summary>
    private async Task FetchWithRetriesAsync(
        string repoId, string commit, FileMetadata file, string? token, FileStream output,
        IncrementalHash hash, long done, TransferState state, CancellationToken ct)
    {
        for (int attempt = 1; done < file.Size; attempt++)
        {
            long before = done;
            try
            {
                var uri = await FreshDownloadUriAsync(repoId, commit, file, token, ct).ConfigureAwait(false);
                done = await FetchRangeAsync(file, uri, token, output, hash, done, state, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (IsRetryable(e) && !ct.IsCancellationRequested)
            {
                await output.FlushAsync(ct).ConfigureAwait(false);
                done = output.Length;
                if (done > before) attempt = 0; // bytes arrived: the connection works, give it a full budget again
                else if (attempt >= MaxAttemptsPerFile) throw GiveUp(file, e);
                await Task.Delay(TimeSpan.FromMilliseconds(200 * Math.Max(attempt, 1)), ct).ConfigureAwait(false);
            }
        }
        await output.FlushAsync(ct).ConfigureAwait(false);
    }

    private static bool IsRetryable(Exception e) =>
        e is HubTimeoutException or HubLinkRefusedException or HttpRequestException ||
        e is IOException && e is not HubDiskFullException;

    private Exception GiveUp(FileMetadata file, Exception last) => last switch
    {
        HubTimeoutException => new HubTimeoutException(
            $"'{file.Path}' stalled: no bytes for " +
            $"{Options.DownloadTimeout.TotalSeconds:F0} s (HF_HUB_DOWNLOAD_TIMEOUT) on " +
            $"{MaxAttemptsPerFile} attempts in a row. The partial file is kept and " +
            $"resumed next time; on a slow line raise HF_HUB_DOWNLOAD_TIMEOUT.", last),
        HubLinkRefusedException refused => new HubException(
            $"The download server refused '{file.Path}' {MaxAttemptsPerFile} " +
            $"times in a row, each time with a freshly resolved link " +
            $"({refused.Message}). This is not an access problem with " +
            $"the repository; retry later. The partial file is kept.",
            refused.StatusCode, last),
        _ =>
            new HubException(
                $"Downloading '{file.Path}' failed {MaxAttemptsPerFile} " +
                $"times in a row ({last.Message}); the partial file " +
                              "is kept and resumed next time.", inner: last),
    };

    private static void VerifyAndPublish(FileMetadata file, string incomplete, string blob, IncrementalHash hash)
    {
        var length = new FileInfo(incomplete).Length;
        if (length != file.Size)
        {
            File.Delete(incomplete);
            throw new HubChecksumException(
                $"'{file.Path}' arrived with {length} bytes instead " +
                $"of {file.Size}; it was discarded, retry the download.");
        }
        if (file.IsLfs)
        {
            var actual = Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
            if (!string.Equals(actual, file.Etag, StringComparison.OrdinalIgnoreCase))
            {
                File.Delete(incomplete);
                throw new HubChecksumException(
                    $"'{file.Path}' has sha256 {actual} but the hub announced {file.Etag}; " +
                    "the download was discarded and nothing entered the cache. Retry; if it persists, " +
                    "the mirror or proxy in between is corrupting data.");
            }
        }
        // A rename within blobs/: the bytes are never copied.
        File.Move(incomplete, blob, overwrite: true);
    }

    private static async Task<long> HashExistingAsync(FileStream output, IncrementalHash hash, CancellationToken ct)
    {
        output.Position = 0;
        var buffer = new byte[ChunkSize];
        long total = 0;
        int read;
        while ((read = await output.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            total += read;
        }
        return total;
    }

    /// <summary>GETs the file from <paramref name="done"/> on and appends it; returns the new length.</summary>
    private async Task<long> FetchRangeAsync(
        FileMetadata file, Uri uri, string? token, FileStream output, IncrementalHash hash,
        long done, TransferState state, CancellationToken ct)
    {
        using var response = await WithTimeoutAsync(
            Options.DownloadTimeout, "HF_HUB_DOWNLOAD_TIMEOUT", $"'{file.Path}'",
            timed =>
                SendAsync(
                    HttpMethod.Get, uri, token, done > 0 ? done : null, followAbsoluteRedirects: true,
                    timed), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && done == file.Size) return done;
        if (!response.IsSuccessStatusCode && file.Redirected)
            // Not the hub's resolve endpoint speaking but the link it redirected to (the CDN): an expired or refused
            // link, never a licence question. It is resolved again on the next attempt.
            throw new HubLinkRefusedException(
                $"{(int)response.StatusCode} {response.ReasonPhrase} from {uri.Host}", response.StatusCode);
        await ThrowIfFailedAsync(response, null, null, file.Path, token).ConfigureAwait(false);
        if (done > 0
            && (response.StatusCode != HttpStatusCode.PartialContent
                || response.Content.Headers.ContentRange?.From != done))
        {
            // The server ignored the range: start over.
            output.SetLength(0);
            hash.GetHashAndReset();
            done = 0;
            state.StartFile(file.Path, file.Size, 0);
        }
        output.Position = done;
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new byte[ChunkSize];
        using var readDeadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            int read = await ReadWithDeadlineAsync(body, buffer, readDeadline, file, ct).ConfigureAwait(false);
            if (read == 0) break;
            if (done + read > file.Size)
                throw new HubChecksumException(
                    $"'{file.Path}' is longer than the {file.Size} bytes the hub announced.");
            await WriteAsync(output, buffer, read, file, ct).ConfigureAwait(false);
            hash.AppendData(buffer, 0, read);
            done += read;
            state.Advance(read, done);
        }
        if (done < file.Size)
            throw new IOException($"Connection closed after {done} of {file.Size} bytes of '{file.Path}'.");
        state.Advance(0, done, force: true);
        return done;
    }

    /// <summary>One read that may wait at most HF_HUB_DOWNLOAD_TIMEOUT for bytes: a stalled connection becomes a
    /// retryable <see cref="HubTimeoutException"/> instead of a hang.</summary>
    private async Task<int> ReadWithDeadlineAsync(
        Stream body, byte[] buffer, CancellationTokenSource deadline, FileMetadata file, CancellationToken ct)
    {
        deadline.CancelAfter(Options.DownloadTimeout);
        try
        {
            return await body.ReadAsync(buffer, deadline.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException
            && !ct.IsCancellationRequested && deadline.IsCancellationRequested)
        {
            throw new HubTimeoutException(
                $"No bytes of '{file.Path}' for {Options.DownloadTimeout.TotalSeconds:F0} s (HF_HUB_DOWNLOAD_TIMEOUT).",
                e);
        }
        finally
        {
            if (!deadline.TryReset()) { } // a fired deadline cannot be reused, but then this attempt is over anyway
        }
    }

    /// <summary>Writes to the partial file. A write error is not a network error: a full disk stops at once as
    /// <see cref="HubDiskFullException"/>, anything else as a non-retryable <see cref="HubException"/>.</summary>
    private async Task WriteAsync(FileStream output, byte[] buffer, int count, FileMetadata file, CancellationToken ct)
    {
        try
        {
            await output.WriteAsync(buffer.AsMemory(0, count), ct).ConfigureAwait(false);
        }
        catch (IOException e) when (DiskFull.Is(e))
        {
            throw new HubDiskFullException(
                $"The disk filled up while writing '{file.Path}' into " +
                $"'{Path.GetDirectoryName(output.Name)}' ({e.Message}). The partial file is " +
                "kept and resumed once there is room; free some space, " +
                "or point HF_HUB_CACHE (or HF_HOME) at a larger disk.", e);
        }
        catch (IOException e)
        {
            throw new HubException($"Cannot write '{output.Name}' ({e.Message}); the download stopped.", inner: e);
        }
    }

    private static async Task<FileStream> AcquireLockAsync(string path, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive flock on Unix, the same lock Python's filelock takes.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < LockPatience)
            {
                // Held by another download of the same blob (this process or another): wait for it.
                await Task.Delay(250, ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new HubException($"Could not lock '{path}' within {LockPatience.TotalMinutes} minutes: another " +
                    $"download of the same file may be stuck; delete the " +
                    $"lock file if no download is running. ({e.Message})", inner: e);
            }
        }
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, string? token, long? rangeFrom,
        bool followAbsoluteRedirects, CancellationToken ct)
    {
        for (int redirects = 0; ; redirects++)
        {
            using var request = new HttpRequestMessage(method, uri);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            request.Headers.UserAgent.Add(new ProductInfoHeaderValue("PSStableDiffusion", "1.0"));
            // The token goes to the hub only, never to a CDN it redirects to.
            if (token is not null && SameOrigin(uri, _endpoint))
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (rangeFrom is { } from) request.Headers.Range = new RangeHeaderValue(from, null);
            var response = await _http.SendAsync(
                request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (!IsRedirect(response.StatusCode) || response.Headers.Location is not { } location || redirects >= 10)
                return response;
            // Like huggingface_hub, a HEAD follows only relative redirects (a renamed repository), not the CDN's.
            if (location.IsAbsoluteUri && !followAbsoluteRedirects) return response;
            if (!location.IsAbsoluteUri) location = new Uri(uri, location);
            response.Dispose();
            uri = location;
        }
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) &&
        string.Equals(a.Host, b.Host, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private static bool IsRedirect(HttpStatusCode status) => (int)status is 301 or 302 or 303 or 307 or 308;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault()
        : response.Content.Headers.TryGetValues(name, out var contentValues) ? contentValues.FirstOrDefault() : null;

    private static string? NormalizeEtag(string? etag)
    {
        if (string.IsNullOrWhiteSpace(etag)) return null;
        etag = etag.Trim();
        if (etag.StartsWith("W/", StringComparison.Ordinal)) etag = etag[2..];
        return etag.Trim('"');
    }

    private async Task ThrowIfFailedAsync(
        HttpResponseMessage response, string? repoId, string? revision, string? path, string? token)
    {
        if (response.IsSuccessStatusCode) return;
        var code = Header(response, "X-Error-Code");
        var serverMessage = Header(response, "X-Error-Message");
        var what = repoId is null ? $"'{path}'" : path is null ? $"'{repoId}'" : $"'{path}' of '{repoId}'";
        var repoPage = repoId is null ? "the model page" : $"{Options.Endpoint}/{repoId}";
        string detail = serverMessage is null ? "" : $" (hub: {serverMessage})";
        var failure = await FailureAsync(
            response, code, what, repoPage, detail, repoId, revision, token).ConfigureAwait(false);
        // A 404 without a code on the file-list request is a missing repository, as the hub words it.
        failure.ErrorCode = code
            ?? (response.StatusCode == HttpStatusCode.NotFound && path is null ? "RepoNotFound" : null);
        failure.StatusCode = response.StatusCode;
        throw failure;
    }

    private static async Task<HubException> FailureAsync(
        HttpResponseMessage response, string? code, string what, string repoPage,
        string detail, string? repoId, string? revision, string? token)
    {
        switch (response.StatusCode)
        {
            case HttpStatusCode.Unauthorized when code == "RepoNotFound":
            case HttpStatusCode.NotFound when code is null or "RepoNotFound":
                return new HubNotFoundException(
                    $"Repository '{repoId}' or revision '{revision}' not found{detail}: check the id and revision. " +
                    "A private repository also answers this way without a token: set HF_TOKEN or pass a token.");
            case HttpStatusCode.NotFound when code == "RevisionNotFound":
                return new HubNotFoundException(
                    $"Revision '{revision}' not found in '{repoId}'{detail}: check the branch, tag or commit.");
            case HttpStatusCode.NotFound:
                return new HubNotFoundException($"{what} not found at revision '{revision}'{detail}.");
            case HttpStatusCode.Unauthorized when code == "GatedRepo" || token is null:
                return new HubAuthenticationException(
                    $"{what} needs a Hugging Face token{detail}: set HF_TOKEN " +
                    $"(or run huggingface-cli login) or pass a token. " +
                    $"Gated models also need their licence accepted on {repoPage}.");
            case HttpStatusCode.Unauthorized:
                return new HubAuthenticationException(
                    $"The token was rejected for {what}{detail}: check HF_TOKEN or the token passed.");
            case HttpStatusCode.Forbidden:
                return new HubAccessDeniedException(
                    $"Access to {what} is denied{detail}: the model is gated; accept its licence on {repoPage} " +
                    "with the account the token belongs to, then retry.");
            default:
                var body = await SafeReadAsync(response).ConfigureAwait(false);
                return new HubException(
                    $"The hub answered {(int)response.StatusCode} {response.ReasonPhrase} for {what}{detail}{body}.",
                    response.StatusCode);
        }
    }

    private static async Task<string> SafeReadAsync(HttpResponseMessage response)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            return string.IsNullOrWhiteSpace(text) ? "" : ": " + (text.Length > 300 ? text[..300] : text);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return "";
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Byte counts and speed across one download call, reported at most every 200 ms.</summary>
    private sealed class TransferState
    {
        private readonly IProgress<HubProgress>? _progress;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private TimeSpan _lastReport = TimeSpan.MinValue;
        private long _transferred;
        private string _file = "";
        private long _fileTotal;
        private long _fileDone;

        public TransferState(IProgress<HubProgress>? progress) => _progress = progress;

        public long BytesTotal { get; set; }
        public long BytesDone { get; private set; }

        public void StartFile(string file, long total, long alreadyThere)
        {
            // Bytes resumed from a partial file count as done but not toward the speed; a restart of the same file
            // takes back what it had counted.
            if (_file == file) BytesDone -= _fileDone;
            _file = file;
            _fileTotal = total;
            _fileDone = alreadyThere;
            BytesDone += alreadyThere;
            Report(force: true);
        }

        public void Advance(int bytes, long fileDone, bool force = false)
        {
            _transferred += bytes;
            BytesDone += bytes;
            _fileDone = fileDone;
            Report(force);
        }

        private void Report(bool force)
        {
            if (_progress is null) return;
            var now = _clock.Elapsed;
            if (!force && now - _lastReport < ProgressInterval) return;
            _lastReport = now;
            var seconds = Math.Max(now.TotalSeconds, 1e-3);
            _progress.Report(new HubProgress(
                _file, _fileDone, _fileTotal, BytesDone, BytesTotal, _transferred / seconds));
        }
    }
}
