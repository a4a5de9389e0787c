using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Expands a file-name template such as <c>out/{Seed}-{Index}.png</c> with an image's record. Tokens
/// (case-insensitive): {Seed} {Index} {Steps} {Guidance} {Scheduler} {Width} {Height} {Prompt} {Model} {Hash}
/// {Date} {Time} {Kind}.
/// </summary>
public static partial class OutputPathTemplate
{
    /// <summary>The file name used when the target is a folder.</summary>
    public const string DefaultFileName = "{Date}-{Time}-{Seed}-{Index}.png";

    public static readonly IReadOnlyList<string> Tokens =
        new[]
        {
            "Seed", "Index", "Steps", "Guidance", "Scheduler", "Width", "Height", "Prompt", "Model", "Hash", "Date",
            "Time", "Kind"
        };

    [GeneratedRegex(@"\{([A-Za-z]+)\}")]
    private static partial Regex TokenPattern();

    /// <summary>True when <paramref name="template"/> holds at least one token.</summary>
    public static bool HasTokens(string template) => TokenPattern().IsMatch(template);

    /// <summary>
    /// Replaces each token with the image's value, made safe for a file name. An unknown token is an
    /// <see cref="ArgumentException"/> naming it and listing the known ones.
    /// </summary>
    public static string Expand(string template, SDImage image, DateTimeOffset now)
    {
        // Folder by folder, so that a name a token produced can be checked as a whole (see AvoidReservedName).
        var parts = SeparatorPattern().Split(template);
        for (var i = 0; i < parts.Length; i += 2)
        {
            if (!HasTokens(parts[i])) continue;
            parts[i] = AvoidReservedName(ExpandPart(parts[i], template, image, now));
        }
        return string.Concat(parts);
    }

    /// <summary>
    /// Windows refuses files and folders named after devices (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or without an
    /// extension, and with trailing spaces), so a prompt "con" would make an unwritable "con.png". A name that tokens
    /// made into one of those gets a leading '_' on every system, so templates give the same names everywhere.
    /// </summary>
    internal static string AvoidReservedName(string name)
    {
        var stem = name.Split('.')[0].TrimEnd(' ');
        return ReservedNamePattern().IsMatch(stem) ? "_" + name : name;
    }

    [GeneratedRegex(@"([/\\])")]
    private static partial Regex SeparatorPattern();

    [GeneratedRegex(
        @"^(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])$",
        RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ReservedNamePattern();

    private static string ExpandPart(string part, string template, SDImage image, DateTimeOffset now)
    {
        var record = image.Record;
        var created = (record.CreatedUtc ?? now).ToLocalTime();
        return TokenPattern().Replace(part, match =>
        {
            var value = match.Groups[1].Value.ToLowerInvariant() switch
            {
                "seed" => record.Seed.ToString(CultureInfo.InvariantCulture),
                "index" => record.ImageIndex.ToString(CultureInfo.InvariantCulture),
                "steps" => record.Steps.ToString(CultureInfo.InvariantCulture),
                "guidance" => record.GuidanceScale.ToString(CultureInfo.InvariantCulture),
                "scheduler" => record.Scheduler,
                "width" => image.Width.ToString(CultureInfo.InvariantCulture),
                "height" => image.Height.ToString(CultureInfo.InvariantCulture),
                "prompt" => Shorten(record.Prompt, 60),
                "model" => record.ModelName ?? "unknown-model",
                "hash" => image.ComputeContentHash()[..10],
                "date" => created.ToString("yyyyMMdd", CultureInfo.InvariantCulture),
                "time" => created.ToString("HHmmss", CultureInfo.InvariantCulture),
                "kind" => record.PipelineKind?.ToString().ToLowerInvariant() ?? "image",
                _ => throw new ArgumentException(
                    $"Unknown token '{match.Value}' in the path template '{template}'. " +
                    $"Known tokens: {string.Join(", ", Tokens.Select(t => "{" + t + "}"))}.",
                    nameof(template)),
            };
            return SafeFileNamePart(value);
        });
    }

    private static string Shorten(string text, int length) => text.Length <= length ? text : text[..length];

    /// <summary>Characters no file system we run on accepts in a name (Windows' set is the strictest)
    /// become '_'.</summary>
    private static string SafeFileNamePart(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var c in value.Trim())
            builder.Append(c < 32 || "<>:\"/\\|?*".Contains(c) ? '_' : c);
        var result = builder.ToString().TrimEnd('.', ' ');
        return result.Length == 0 ? "_" : result;
    }
}
