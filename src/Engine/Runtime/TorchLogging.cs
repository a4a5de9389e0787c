using System.Runtime.InteropServices;
using TorchSharp;

namespace PSStableDiffusion.Engine.Runtime;

/// <summary>
/// libtorch's C++ warnings go straight to stderr: on CPUs that NNPACK does not know, every convolution prints
/// "Could not initialize NNPACK! Reason: Unsupported hardware.". Start-Job and remote sessions report each stderr
/// line as an error of the job, so a correct image would arrive wrapped in red. libtorch reads
/// <c>TORCH_CPP_LOG_LEVEL</c> only when Python starts it, so the engine lowers the level flag itself (to errors),
/// unless the user set that variable.
/// </summary>
public static class TorchLogging
{
    public const string LevelVariable = "TORCH_CPP_LOG_LEVEL";

    private const string LevelFlag = "FLAGS_caffe2_log_level";
    private const int ErrorLevel = 2; // c10's INFO 0, WARNING 1, ERROR 2, FATAL 3
    private static readonly object Gate = new();
    private static bool? _quieted;

    /// <summary>Shows only libtorch's errors from now on (once per process). Returns whether the
    /// level was set.</summary>
    public static bool QuietWarnings()
    {
        lock (Gate)
        {
            return _quieted ??= SetLevel();
        }
    }

    private static bool SetLevel()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(LevelVariable))) return false;
        torch.InitializeDeviceType(DeviceType.CPU); // loads c10 with the rest of libtorch
        var c10 = LoadedC10();
        if (c10 == IntPtr.Zero || !NativeLibrary.TryGetExport(c10, LevelFlag, out var flag)) return false;
        Marshal.WriteInt32(flag, ErrorLevel);
        return true;
    }

    /// <summary>
    /// The c10 library TorchSharp already loaded, never another: a search by name could load a second, different
    /// libtorch (Debian's python3-torch puts libc10.so on the default library path).
    /// </summary>
    private static IntPtr LoadedC10()
    {
        if (OperatingSystem.IsWindows()) return GetModuleHandle("c10.dll");
        var noLoad = OperatingSystem.IsMacOS() ? 0x10 : 0x4; // RTLD_NOLOAD
        const int lazy = 0x1; // RTLD_LAZY
        try
        {
            return DlOpen(OperatingSystem.IsMacOS() ? "libc10.dylib" : "libc10.so", lazy | noLoad);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return IntPtr.Zero;
        }
    }

    [DllImport("libc", EntryPoint = "dlopen")]
    private static extern IntPtr DlOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string fileName, int flags);

    [DllImport("kernel32", EntryPoint = "GetModuleHandleW", CharSet = CharSet.Unicode)]
    private static extern IntPtr GetModuleHandle(string moduleName);
}
