using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// One model repository's folder in the hub cache, laid out exactly as huggingface_hub lays it out:
/// <code>
/// models--{org}--{name}/
///   blobs/{etag}                     file contents, named by sha256 (LFS) or git sha1 (small files)
///   snapshots/{commit}/{path}        symlink to ../../blobs/{etag} (a copy where symlinks are not allowed)
///   refs/{revision}                  the commit a branch or tag pointed to when last seen
/// </code>
/// plus <c>{cache}/.locks/models--{org}--{name}/{etag}.lock</c> while a blob is written.
/// </summary>
public sealed partial class HubCache
{
    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    public HubCache(string cacheRoot, string repoId)
    {
        if (!RepoIdPattern().IsMatch(repoId) || repoId.Contains("..", StringComparison.Ordinal))
            throw new ArgumentException($"'{repoId}' is not a Hugging Face repository id like 'org/name'.", nameof(repoId));
        CacheRoot = cacheRoot;
        RepoId = repoId;
        FolderName = "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);
        RepoFolder = Path.Combine(cacheRoot, FolderName);
    }

    public string CacheRoot { get; }
    public string RepoId { get; }
    public string FolderName { get; }
    public string RepoFolder { get; }

    public static bool IsCommitHash(string revision) => CommitPattern().IsMatch(revision);

    /// <summary>Checks that a revision (branch, tag, commit, e.g. <c>refs/pr/1</c>) is safe to use as a path.</summary>
    /// <remarks>No ':' either: on Windows <c>C:x</c> leaves the cache folder and <c>a:b</c> writes an NTFS stream (git
    /// refuses ':' in ref names, so no real revision has one).</remarks>
    public static void ValidateRevision(string revision)
    {
        if (string.IsNullOrWhiteSpace(revision) || revision.Contains("..", StringComparison.Ordinal) ||
            revision.Contains('\\') || revision.Contains(':') || revision.StartsWith('/') || revision.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            throw new ArgumentException($"'{revision}' is not a valid revision.", nameof(revision));
    }

    public string SnapshotFolder(string commit) => Path.Combine(RepoFolder, "snapshots", commit);

    public string SnapshotFile(string commit, string repoPath) =>
        Path.Combine(SnapshotFolder(commit), repoPath.Replace('/', Path.DirectorySeparatorChar));

    public string BlobPath(string etag) => Path.Combine(RepoFolder, "blobs", etag);

    public string LockPath(string etag) => Path.Combine(CacheRoot, ".locks", FolderName, etag + ".lock");

    private string RefPath(string revision) => Path.Combine(RepoFolder, "refs", revision.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>The commit <paramref name="revision"/> resolves to from the cache alone: itself when it is a commit
    /// hash with a snapshot, else the content of refs/{revision}; null when unknown.</summary>
    public string? ResolveCommit(string revision)
    {
        if (IsCommitHash(revision)) return Directory.Exists(SnapshotFolder(revision)) ? revision : null;
        var refPath = RefPath(revision);
        if (!File.Exists(refPath)) return null;
        var commit = File.ReadAllText(refPath).Trim();
        return IsCommitHash(commit) ? commit : null;
    }

    /// <summary>Records that <paramref name="revision"/> points at <paramref name="commit"/> (no-op for commit hashes).</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit) return;
        var refPath = RefPath(revision);
        if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        File.WriteAllText(refPath, commit);
    }

    /// <summary>Files of a snapshot whose content is present (dangling links are skipped), as repository paths.</summary>
    public IReadOnlyCollection<string> SnapshotFiles(string commit)
    {
        var folder = SnapshotFolder(commit);
        if (!Directory.Exists(folder)) return Array.Empty<string>();
        return Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(IsPresent)
            .Select(f => Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/'))
            .ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>True when <paramref name="path"/> exists and, if it is a link, its target does too.</summary>
    public static bool IsPresent(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return false;
        return info.LinkTarget is null || info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
    }

    /// <summary>Points snapshots/{commit}/{path} at the blob: a relative symlink as huggingface_hub makes; where the OS
    /// refuses symlinks (Windows without developer mode), a hard link, and where even that fails (another volume, FAT),
    /// the blob itself is moved into the snapshot as huggingface_hub does. Never a copy: a 5 GB model takes 5 GB.</summary>
    /// <param name="allowSymlink">False to take the no-symlink path (tests of the Windows behaviour on any OS).</param>
    public void LinkSnapshotFile(string commit, string repoPath, string etag, bool allowSymlink = true)
    {
        var link = SnapshotFile(commit, repoPath);
        var blob = BlobPath(etag);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null) File.Delete(link);
        try
        {
            if (!allowSymlink) throw new UnauthorizedAccessException("symlinks not allowed");
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            // fall through to a hard link
        }
        if (!HardLink.TryCreate(blob, link)) File.Move(blob, link);
    }
}
