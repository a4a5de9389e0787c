using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using PSStableDiffusion.Engine.Pipelines;

namespace PSStableDiffusion.Engine.Hub;

/// <summary>
/// Whether a loaded model holds Stability AI's released SD 2.x weights (<see cref="KnownReleases"/>): told from the
/// model hash the engine records anyway (the SHA-256 of a single-file checkpoint, cached by ModelHashCache), and, for a
/// hub snapshot, from the blob names its weight files link to (each an LFS SHA-256, so no file is read again).
/// </summary>
public static partial class ModelProvenance
{
    private static readonly ConditionalWeakTable<StableDiffusionModel, string> Known = new();

    [GeneratedRegex("^[0-9a-f]{64}$")]
    private static partial Regex Sha256Name();

    /// <summary>"same weights as Stability AI's release of &lt;file&gt;" or "unverified copy".</summary>
    public static string Of(StableDiffusionModel model) =>
        Known.GetValue(model, m => Describe(m.ContentHash, m.Source));

    /// <summary>As <see cref="Of"/>, from a model hash and the model's file or folder.</summary>
    public static string Describe(string? contentHash, string source) =>
        KnownReleases.Describe(Candidates(contentHash, source));

    private static IEnumerable<string?> Candidates(string? contentHash, string source)
    {
        yield return contentHash;
        if (!Directory.Exists(source)) yield break;
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = new FileInfo(file).LinkTarget;
            if (target is not null && Sha256Name().IsMatch(Path.GetFileName(target)))
                yield return Path.GetFileName(target);
        }
    }
}
