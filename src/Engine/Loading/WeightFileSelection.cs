using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Which weights of one diffusers component (the files directly in its folder) a pipeline loads: the one rule for a
/// folder on disk (<see cref="DiffusersFolderLoader"/>) and a hub repository's file list
/// (<see cref="Hub.DiffusersFileSelection"/>).
/// </summary>
/// <remarks>
/// The rule is diffusers 0.29.2's. <c>DiffusionPipeline.from_pretrained</c> hands a component the requested variant
/// only when its folder holds a file of that variant (otherwise the component loads its plain weights), and
/// <c>variant_compatible_siblings</c> downloads a variant file where there is one, else the plain file. Without a
/// variant, only plain weights count: a component holding nothing but <c>fp16</c> weights fails to load in diffusers,
/// and here it is chosen by no one (the caller says which variants there are). So:
/// <list type="number">
/// <item>variant asked and the component has that variant: the variant's set;</item>
/// <item>otherwise: the plain set;</item>
/// <item>never another variant.</item>
/// </list>
/// Within the chosen variant (or plain) tier, safetensors come before pickled <c>.bin</c> weights, as diffusers tries
/// <c>*.safetensors</c> first. A set is one file or the shards of one (<c>-00001-of-00002</c>) with their index JSON.
/// </remarks>
public static partial class WeightFileSelection
{
    private static readonly string[] WeightExtensions = { ".safetensors", ".bin" };

    [GeneratedRegex(@"-\d{5}-of-\d{5}$")]
    private static partial Regex ShardSuffix();

    [GeneratedRegex(@"\.(safetensors|bin)\.index(?:\.([^.]+))?\.json$")]
    private static partial Regex IndexFile();

    /// <summary>
    /// The chosen weight set among <paramref name="fileNames"/> (names within one component folder), sorted
    /// ordinally; null when the rule finds none (see <see cref="Variants"/> for what there is instead).
    /// </summary>
    public static IReadOnlyList<string>? Select(IEnumerable<string> fileNames, string? variant)
    {
        var weights = fileNames.Select(f => (File: f, Info: Describe(f))).Where(w => w.Info is not null).ToList();
        bool hasVariant = variant is not null && weights.Any(w => w.Info!.Value.Variant == variant);
        string? tier = hasVariant ? variant : null;
        foreach (var format in new[] { "safetensors", "bin" })
        {
            var chosen = weights.Where(w => w.Info!.Value.Format == format && w.Info.Value.Variant == tier)
                .Select(w => w.File).Order(StringComparer.Ordinal).ToList();
            if (chosen.Count > 0) return chosen;
        }
        return null;
    }

    /// <summary>The variants among <paramref name="fileNames"/>' weights, "" for the plain ones (for
    /// messages).</summary>
    public static IReadOnlyList<string> Variants(IEnumerable<string> fileNames) =>
        fileNames.Select(Describe).Where(d => d is not null).Select(d => d!.Value.Variant ?? "")
            .Distinct().Order(StringComparer.Ordinal).ToList();

    /// <summary>Format (safetensors or bin) and variant of a weights file or weights index, or null when
    /// <paramref name="file"/> is neither.</summary>
    public static (string Format, string? Variant)? Describe(string file)
    {
        var index = IndexFile().Match(file);
        if (index.Success) return (index.Groups[1].Value, index.Groups[2].Success ? index.Groups[2].Value : null);
        var extension = WeightExtensions.FirstOrDefault(e => file.EndsWith(e, StringComparison.Ordinal));
        if (extension is null) return null;
        var stem = ShardSuffix().Replace(file[..^extension.Length], "");
        var dot = stem.LastIndexOf('.');
        return (extension[1..], dot < 0 ? null : stem[(dot + 1)..]);
    }
}
