namespace PSStableDiffusion.Engine.Hub;

/// <summary>Tells a full disk from other write errors, on each OS.</summary>
internal static class DiskFull
{
    private const int Enospc = 28;          // Linux and macOS errno
    private const int ErrorHandleDiskFull = 39;  // Windows
    private const int ErrorDiskFull = 112;       // Windows

    /// <summary>True when <paramref name="e"/> reports that the disk (or a quota) has no room left.</summary>
    public static bool Is(IOException e)
    {
        int code = e.HResult;
        if (OperatingSystem.IsWindows()) code &= 0xFFFF; // HRESULT_FROM_WIN32
        return code is ErrorHandleDiskFull or ErrorDiskFull || (!OperatingSystem.IsWindows() && code == Enospc);
    }
}
