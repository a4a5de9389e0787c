namespace PSStableDiffusion.Engine.Runtime;

/// <summary>The Visual C++ runtime that libtorch needs on Windows is not installed.</summary>
public sealed class NativeRuntimeMissingException(IReadOnlyList<string> missing) : Exception(
    $"libtorch needs the {VisualCppRuntime.RedistributableName}, which is not installed: Windows cannot load " +
    $"{string.Join(", ", missing)}. Install it from {VisualCppRuntime.DownloadUrl} " +
    $"(or: winget install Microsoft.VCRedist.2015+.x64), then start a new PowerShell.")
{
    public IReadOnlyList<string> MissingLibraries { get; } = missing;
}
