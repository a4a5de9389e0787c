using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace PSStableDiffusion.Engine.Tests.Hub;

/// <summary>
/// A minimal Hugging Face hub on 127.0.0.1 over a raw TcpListener (one request per connection). It speaks the parts
/// huggingface_hub relies on: the revision API with <c>sha</c> and <c>siblings</c>; <c>HEAD/GET
/// /{repo}/resolve/{rev}/{path}</c> answering small files directly (ETag = git blob sha1) and LFS files with a 302 to
/// <c>/cdn/{sha256}</c> carrying <c>X-Linked-Etag</c> / <c>X-Linked-Size</c>; and <c>Range</c> on downloads.
/// Faults: cut the connection after N bytes on the first GET of a file, stall mid-file, corrupt a file's bytes, demand
/// a token, force an error status, expire CDN links after a lifetime (403 from the CDN, as S3 answers), slow the CDN.
/// Any other repository id gets RepoNotFound, as the hub answers for Stability AI's withdrawn SD 2 repositories.
/// </summary>
internal sealed class FakeHubServer : IDisposable
{
    public sealed record Request(string Method, string Target, string? Range, string? Authorization, string? AcceptEncoding);

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Dictionary<string, byte[]> _files;
    private readonly ConcurrentDictionary<string, int> _getCounts = new();

    public FakeHubServer(string repoId, IReadOnlyDictionary<string, byte[]> files, string commit = "0123456789abcdef0123456789abcdef01234567")
    {
        RepoId = repoId;
        Commit = commit;
        _files = files.ToDictionary(kv => kv.Key, kv => kv.Value);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Endpoint = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _loop = Task.Run(AcceptLoop);
    }

    public string RepoId { get; }
    public string Commit { get; }
    public string Endpoint { get; }
    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>Repository path → bytes after which the first GET of that file drops the connection.</summary>
    public Dictionary<string, int> CutAfter { get; } = new();

    /// <summary>Repository path → (bytes, pause): the first GET of that file sends that many bytes, then sends nothing
    /// for the pause (a stalled connection), then drops the connection.</summary>
    public Dictionary<string, (int Bytes, TimeSpan Pause)> StallAfter { get; } = new();

    /// <summary>Stall on every GET of the files in <see cref="StallAfter"/>, not only the first.</summary>
    public bool StallEveryGet { get; set; }

    /// <summary>When set, CDN links are valid this long after the hub handed them out; older ones get 403.</summary>
    public TimeSpan? LinkLifetime { get; set; }

    /// <summary>Delay before the CDN answers each GET (a slow line).</summary>
    public TimeSpan CdnDelay { get; set; }

    /// <summary>When set, the CDN refuses every GET with this status (a CDN that never accepts the link).</summary>
    public int? CdnRefusal { get; set; }

    /// <summary>Status the hub answers for repositories it does not hold (the real hub: 401 without a token, 404 with one).</summary>
    public int MissingRepoStatus { get; set; } = 404;

    /// <summary>Paths served with one byte flipped (their announced sha256 stays the true one).</summary>
    public HashSet<string> Corrupt { get; } = new();

    /// <summary>When set, hub requests (not the CDN) without <c>Bearer {token}</c> get 401.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>When set, every hub request gets this status with the X-Error-Code.</summary>
    public (int Status, string? ErrorCode)? ForcedError { get; set; }

    public static bool IsLfs(string path) => path.EndsWith(".safetensors", StringComparison.Ordinal) || path.EndsWith(".bin", StringComparison.Ordinal);

    public static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();

    public static string GitBlobSha1(byte[] data)
    {
        var header = Encoding.ASCII.GetBytes($"blob {data.Length}\0");
        return Convert.ToHexString(SHA1.HashData(header.Concat(data).ToArray())).ToLowerInvariant();
    }

    public static string EtagOf(string path, byte[] data) => IsLfs(path) ? Sha256(data) : GitBlobSha1(data);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var head = await ReadHead(stream);
                if (head is null) return;
                var lines = head.Split("\r\n");
                var parts = lines[0].Split(' ');
                var headers = lines.Skip(1).Where(l => l.Contains(':'))
                    .ToDictionary(l => l[..l.IndexOf(':')].Trim().ToLowerInvariant(), l => l[(l.IndexOf(':') + 1)..].Trim());
                var request = new Request(parts[0], Uri.UnescapeDataString(parts[1]), headers.GetValueOrDefault("range"),
                    headers.GetValueOrDefault("authorization"), headers.GetValueOrDefault("accept-encoding"));
                Requests.Enqueue(request);
                await Handle(stream, request);
            }
            catch (IOException)
            {
                // client went away
            }
        }
    }

    private static async Task<string?> ReadHead(NetworkStream stream)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (buffer.Count < 65536)
        {
            if (await stream.ReadAsync(one) == 0) return null;
            buffer.Add(one[0]);
            int n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n')
                return Encoding.ASCII.GetString(buffer.ToArray(), 0, n - 4);
        }
        return null;
    }

    private async Task Handle(NetworkStream stream, Request request)
    {
        var target = request.Target.Split('?')[0];
        if (target.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            bool expired = LinkExpired(request.Target); // judged on arrival, before the slow answer
            if (CdnDelay > TimeSpan.Zero) await Task.Delay(CdnDelay);
            if (CdnRefusal is not null || expired)
            {
                var xml = Encoding.UTF8.GetBytes("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>");
                await Send(stream, CdnRefusal ?? 403, "Forbidden", new() { ["Content-Type"] = "application/xml" }, xml, request.Method);
                return;
            }
            var sha = target["/cdn/".Length..];
            var path = _files.Keys.First(p => IsLfs(p) && Sha256(_files[p]) == sha);
            await SendFile(stream, request, path, new());
            return;
        }
        if (ForcedError is { } forced)
        {
            await Send(stream, forced.Status, "Error", ErrorHeaders(forced.ErrorCode), Encoding.UTF8.GetBytes("{\"error\":\"nope\"}"), request.Method);
            return;
        }
        if (RequiredToken is not null && request.Authorization != "Bearer " + RequiredToken)
        {
            await Send(stream, 401, "Unauthorized", new(), Encoding.UTF8.GetBytes("{\"error\":\"Invalid credentials\"}"), request.Method);
            return;
        }
        var apiPrefix = $"/api/models/{RepoId}/revision/";
        if (target.StartsWith(apiPrefix, StringComparison.Ordinal))
        {
            var revision = target[apiPrefix.Length..];
            if (revision != "main" && revision != Commit)
            {
                await Send(stream, 404, "Not Found", ErrorHeaders("RevisionNotFound"), Array.Empty<byte>(), request.Method);
                return;
            }
            var json = JsonSerializer.SerializeToUtf8Bytes(new
            {
                id = RepoId,
                sha = Commit,
                siblings = _files.Keys.Order(StringComparer.Ordinal).Select(f => new { rfilename = f }).ToArray(),
            });
            await Send(stream, 200, "OK", new() { ["Content-Type"] = "application/json" }, json, request.Method);
            return;
        }
        var resolvePrefix = $"/{RepoId}/resolve/";
        if (target.StartsWith(resolvePrefix, StringComparison.Ordinal))
        {
            var rest = target[resolvePrefix.Length..];
            var slash = rest.IndexOf('/');
            var revision = rest[..slash];
            var path = rest[(slash + 1)..];
            if (revision != "main" && revision != Commit)
            {
                await Send(stream, 404, "Not Found", ErrorHeaders("RevisionNotFound"), Array.Empty<byte>(), request.Method);
                return;
            }
            if (!_files.TryGetValue(path, out var data))
            {
                await Send(stream, 404, "Not Found", ErrorHeaders("EntryNotFound"), Array.Empty<byte>(), request.Method);
                return;
            }
            var headers = new Dictionary<string, string> { ["X-Repo-Commit"] = Commit };
            if (IsLfs(path))
            {
                var sha = Sha256(data);
                headers["X-Linked-Etag"] = $"\"{sha}\"";
                headers["X-Linked-Size"] = data.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
                headers["ETag"] = "\"lfs-pointer-etag\"";
                var issued = DateTime.UtcNow.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
                headers["Location"] = $"{Endpoint}/cdn/{sha}?X-Amz-Expires=3600&issued={issued}&X-Amz-Signature=abc";
                await Send(stream, 302, "Found", headers, Array.Empty<byte>(), request.Method);
                return;
            }
            headers["ETag"] = $"\"{GitBlobSha1(data)}\"";
            await SendFile(stream, request, path, headers);
            return;
        }
        await Send(stream, MissingRepoStatus, MissingRepoStatus == 401 ? "Unauthorized" : "Not Found", ErrorHeaders("RepoNotFound"),
            Encoding.UTF8.GetBytes("{\"error\":\"Repository Not Found\"}"), request.Method);
    }

    private bool LinkExpired(string target)
    {
        if (LinkLifetime is not { } lifetime) return false;
        var query = target.Contains('?') ? target[(target.IndexOf('?') + 1)..] : "";
        var issued = query.Split('&').FirstOrDefault(p => p.StartsWith("issued=", StringComparison.Ordinal));
        return issued is null || DateTime.UtcNow - new DateTime(long.Parse(issued["issued=".Length..], System.Globalization.CultureInfo.InvariantCulture), DateTimeKind.Utc) > lifetime;
    }

    private static Dictionary<string, string> ErrorHeaders(string? code) =>
        code is null ? new() : new() { ["X-Error-Code"] = code, ["X-Error-Message"] = code + " (fake hub)" };

    private async Task SendFile(NetworkStream stream, Request request, string path, Dictionary<string, string> headers)
    {
        var data = _files[path];
        if (Corrupt.Contains(path))
        {
            data = (byte[])data.Clone();
            data[data.Length / 2] ^= 0xff;
        }
        long from = 0;
        int status = 200;
        if (request.Range is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = long.Parse(range["bytes=".Length..^1], System.Globalization.CultureInfo.InvariantCulture);
            status = 206;
            headers["Content-Range"] = $"bytes {from}-{data.Length - 1}/{data.Length}";
        }
        var body = data[(int)from..];
        bool first = request.Method == "GET" && _getCounts.AddOrUpdate(path, 1, (_, n) => n + 1) == 1;
        if ((first || StallEveryGet && request.Method == "GET") && StallAfter.TryGetValue(path, out var stall))
        {
            await Send(stream, status, "OK", headers, body, "GET", sendOnly: stall.Bytes);
            await Task.Delay(stall.Pause);
            return;
        }
        if (first && CutAfter.TryGetValue(path, out var cut))
        {
            // Announce the whole body, send part of it, then drop the connection.
            await Send(stream, status, "OK", headers, body, "GET", sendOnly: cut);
            return;
        }
        await Send(stream, status, status == 206 ? "Partial Content" : "OK", headers, body, request.Method);
    }

    private static async Task Send(NetworkStream stream, int status, string reason, Dictionary<string, string> headers,
        byte[] body, string method, int? sendOnly = null)
    {
        var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\n");
        foreach (var (name, value) in headers) head.Append(name).Append(": ").Append(value).Append("\r\n");
        head.Append("Content-Length: ").Append(body.Length).Append("\r\nConnection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()));
        if (method != "HEAD") await stream.WriteAsync(body.AsMemory(0, Math.Min(body.Length, sendOnly ?? body.Length)));
        await stream.FlushAsync();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
        _stop.Dispose();
    }
}
