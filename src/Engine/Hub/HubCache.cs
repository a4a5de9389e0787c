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
    /// <summary>Prefix of a model repository's folder in the cache (<c>models--org--name</c>).</summary>
    public const string RepoFolderPrefix = "models--";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    public HubCache(string cacheRoot, string repoId)
    {
        if (!IsRepoId(repoId))
            throw new ArgumentException(
                $"'{repoId}' is not a Hugging Face repository id like 'org/name'.", nameof(repoId));
        CacheRoot = cacheRoot;
        RepoId = repoId;
        FolderName = RepoFolderPrefix + repoId.Replace("/", "--", StringComparison.Ordinal);
        RepoFolder = Path.Combine(cacheRoot, FolderName);
    }

    public string CacheRoot { get; }
    public string RepoId { get; }
    public string FolderName { get; }
    public string RepoFolder { get; }

    public static bool IsCommitHash(string revision) => CommitPattern().IsMatch(revision);

    /// <summary>Whether <paramref name="value"/> has the form of a hub repository id (<c>org/name</c>), as
    /// huggingface_hub validates it (no <c>--</c> or <c>..</c>, no trailing <c>.</c> or <c>-</c>). Says nothing about
    /// whether it exists.</summary>
    public static bool IsRepoId(string value) =>
        RepoIdPattern().IsMatch(value)
            && !value.Contains("..", StringComparison.Ordinal) && !value.Contains("--", StringComparison.Ordinal) &&
        !value.EndsWith('.') && !value.EndsWith('-');

    /// <summary>The repository whose cache folder is <paramref name="repoFolder"/> (<c>{cache}/models--org--name</c>),
    /// or null when that is not a model repository's folder.</summary>
    public static HubCache? FromRepoFolder(string repoFolder)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(repoFolder));
        var name = Path.GetFileName(full);
        if (!name.StartsWith(RepoFolderPrefix, StringComparison.Ordinal)) return null;
        var id = name[RepoFolderPrefix.Length..].Replace("--", "/", StringComparison.Ordinal);
        return IsRepoId(id) ? new HubCache(Path.GetDirectoryName(full)!, id) : null;
    }

    /// <summary>The repository and commit when <paramref name="folder"/> is a snapshot folder
    /// (<c>models--org--name/snapshots/{commit}</c>), else null.</summary>
    public static (HubCache Repository, string Commit)? FromSnapshotFolder(string folder)
    {
        var snapshot = new DirectoryInfo(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        if (snapshot.Parent is not { Name: "snapshots" } snapshots || snapshots.Parent is not { } repository)
            return null;
        return FromRepoFolder(repository.FullName) is { } cache ? (cache, snapshot.Name) : null;
    }

    /// <summary>Every model repository in the cache at <paramref name="cacheRoot"/> (none when it does
    /// not exist).</summary>
    public static IEnumerable<HubCache> Repositories(string cacheRoot) =>
        Directory.Exists(cacheRoot)
            ? Directory.EnumerateDirectories(cacheRoot, RepoFolderPrefix + "*")
                .Select(FromRepoFolder)
                .OfType<HubCache>()
            : Enumerable.Empty<HubCache>();

    /// <summary>The snapshot folders of this repository, by commit (ordinal), that hold <paramref name="marker"/>
    /// (e.g. model_index.json) when it is given.</summary>
    public IReadOnlyList<string> SnapshotFolders(string? marker = null)
    {
        var snapshots = Path.Combine(RepoFolder, "snapshots");
        if (!Directory.Exists(snapshots)) return Array.Empty<string>();
        return Directory.EnumerateDirectories(snapshots).Order(StringComparer.Ordinal)
            .Where(folder => marker is null || File.Exists(Path.Combine(folder, marker)))
            .ToList();
    }

    /// <summary>The refs (branches, tags, <c>refs/pr/N</c>) that point at <paramref name="commit"/>, as paths under
    /// <c>refs/</c> with '/'; an unreadable ref counts as pointing nowhere.</summary>
    public IReadOnlyList<string> RefsTo(string commit)
    {
        var refs = Path.Combine(RepoFolder, "refs");
        if (!Directory.Exists(refs)) return Array.Empty<string>();
        return Directory.EnumerateFiles(refs, "*", SearchOption.AllDirectories)
            .Where(f => ReadRef(f) == commit)
            .Select(f => Path.GetRelativePath(refs, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    private static string? ReadRef(string file)
    {
        try
        {
            return File.ReadAllText(file).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Checks that a revision (branch, tag, commit, e.g. <c>refs/pr/1</c>) is safe to use as a path.</summary>
    /// <remarks>No ':' either: on Windows <c>C:x</c> leaves the cache folder and <c>a:b</c> writes an NTFS stream (git
    /// refuses ':' in ref names, so no real revision has one).</remarks>
    public static void ValidateRevision(string revision)
    {
        if (string.IsNullOrWhiteSpace(revision) || revision.Contains("..", StringComparison.Ordinal) ||
            revision.Contains('\\')
                || revision.Contains(':') || revision.StartsWith('/')
                || revision.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            throw new ArgumentException($"'{revision}' is not a valid revision.", nameof(revision));
    }

    public string SnapshotFolder(string commit) => Path.Combine(RepoFolder, "snapshots", commit);

    public string SnapshotFile(string commit, string repoPath) =>
        Path.Combine(SnapshotFolder(commit), repoPath.Replace('/', Path.DirectorySeparatorChar));

    public string BlobPath(string etag) => Path.Combine(RepoFolder, "blobs", etag);

    public string LockPath(string etag) => Path.Combine(CacheRoot, ".locks", FolderName, etag + ".lock");

    private string RefPath(string revision) =>
        Path.Combine(RepoFolder, "refs", revision.Replace('/', Path.DirectorySeparatorChar));

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

    /// <summary>Records that <paramref name="revision"/> points at <paramref name="commit"/> (no-op for
    /// commit hashes).</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit) return;
        var refPath = RefPath(revision);
        if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit) return;
        Directory.CreateDirectory(Path.GetDirectoryName(refPath)!);
        File.WriteAllText(refPath, commit);
    }

    /// <summary>Files of a snapshot whose content is present (dangling links are skipped), as
    /// repository paths.</summary>
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
    /// the blob itself is moved into the snapshot as huggingface_hub does. Never a copy: a 5 GB model
    /// takes 5 GB.</summary>
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
