namespace PSStableDiffusion.Engine;

/// <summary>What identifies one loaded engine: the model source, where it computes, and load options that
/// change it.</summary>
public sealed record EngineKey(string ModelSource, ComputeTarget Target, string LoadOptions = "")
{
    /// <summary>Paths compare case-insensitively on Windows and macOS, where the file systems usually do.</summary>
    public bool Equals(EngineKey? other) =>
        other is not null && Target == other.Target && LoadOptions == other.LoadOptions &&
        string.Equals(ModelSource, other.ModelSource, PathComparison);

    public override int GetHashCode() =>
        HashCode.Combine(PathComparer.GetHashCode(ModelSource), Target, LoadOptions);

    private static StringComparison PathComparison =>
        OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;

    private static StringComparer PathComparer =>
        OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase;
}
