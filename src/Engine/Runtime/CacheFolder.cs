namespace PSStableDiffusion.Engine.Runtime;

/// <summary>Where the engine remembers things across sessions (model hashes, the precision measurement).</summary>
public static class CacheFolder
{
    /// <summary>Environment variable that moves the cache folder (CI, tests, read-only homes).</summary>
    public const string Variable = "PSSTABLEDIFFUSION_CACHE";

    /// <summary><c>$PSSTABLEDIFFUSION_CACHE</c>, else the user's local application data folder
    /// (<c>%LOCALAPPDATA%\PSStableDiffusion</c> on Windows, <c>~/.local/share/PSStableDiffusion</c> on
    /// Linux).</summary>
    public static string Path
    {
        get
        {
            var folder = Environment.GetEnvironmentVariable(Variable);
            return string.IsNullOrWhiteSpace(folder)
                ? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData,
                    Environment.SpecialFolderOption.DoNotVerify), "PSStableDiffusion")
                : folder;
        }
    }
}
