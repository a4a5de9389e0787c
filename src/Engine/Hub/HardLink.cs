using System.Runtime.InteropServices;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>Hard links (.NET has no API for them): CreateHardLinkW on Windows, link(2) elsewhere.</summary>
internal static partial class HardLink
{
    /// <summary>Makes <paramref name="link"/> a second name of the existing file <paramref name="target"/>; false when
    /// the file system or OS refuses (then nothing was created).</summary>
    public static bool TryCreate(string target, string link)
    {
        try
        {
            return OperatingSystem.IsWindows()
                ? CreateHardLinkW(link, target, IntPtr.Zero)
                : UnixLink(target, link) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [LibraryImport(
        "kernel32.dll", EntryPoint = "CreateHardLinkW",
        StringMarshalling = StringMarshalling.Utf16, SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool CreateHardLinkW(string newFileName, string existingFileName, IntPtr securityAttributes);

    [LibraryImport("libc", EntryPoint = "link", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int UnixLink(string oldPath, string newPath);
}
