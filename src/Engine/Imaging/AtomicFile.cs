namespace PSStableDiffusion.Engine.Imaging;

/// <summary>Writes files so that readers see either the old content or the complete new one, never a part.</summary>
public static class AtomicFile
{
    /// <summary>Waits between tries of the final rename: about 3 s in all.</summary>
    internal static readonly TimeSpan[] ReplaceRetryDelays =
        [TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200),
         TimeSpan.FromMilliseconds(400), TimeSpan.FromMilliseconds(800), TimeSpan.FromMilliseconds(1600)];

    /// <summary>
    /// Writes <paramref name="bytes"/> to a temporary file in the target's directory, flushes it to disk, then
    /// renames it over <paramref name="path"/> (a rename within one directory is atomic on the same volume).
    /// </summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes) => Write(path, bytes, File.Move, Thread.Sleep);

    /// <summary><see cref="Write(string, ReadOnlySpan{byte})"/> with the rename and the wait
    /// replaceable (tests).</summary>
    internal static void Write(
        string path, ReadOnlySpan<byte> bytes, Action<string, string, bool> move, Action<TimeSpan> wait)
    {
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath)
            ?? throw new ArgumentException($"'{path}' has no parent directory.", nameof(path));
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Cannot write '{fullPath}': directory '{directory}' does not exist.");

        var temp = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
            ReplaceWithRetry(temp, fullPath, move, wait);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// On Windows a rename over a file fails while another process has it open without FileShare.Delete: an image
    /// viewer, Explorer's thumbnailer or an antivirus scan, which let go within moments. So a failed replace of an
    /// existing file is tried again with growing pauses before the error is reported.
    /// </summary>
    private static void ReplaceWithRetry(
        string temp, string target, Action<string, string, bool> move, Action<TimeSpan> wait)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                move(temp, target, true);
                return;
            }
            catch (Exception e) when (IsTransientReplaceFailure(e, target) && attempt < ReplaceRetryDelays.Length)
            {
                wait(ReplaceRetryDelays[attempt]);
            }
        }
    }

    private static bool IsTransientReplaceFailure(Exception e, string target) =>
        e is UnauthorizedAccessException or IOException
            and not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException)
        && File.Exists(target);
}
