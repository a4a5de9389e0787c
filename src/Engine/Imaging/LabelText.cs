using SkiaSharp;

namespace PSStableDiffusion.Engine.Imaging;

/// <summary>
/// Text for contact sheets, set in the bundled DejaVu Sans (<c>Data/fonts</c> next to the engine assembly) so that a
/// sheet looks the same on any machine, one without fonts included: no system font is ever looked up.
/// </summary>
internal static class LabelText
{
    private const string Ellipsis = "…";

    private static readonly Lazy<SKTypeface> BundledTypeface = new(LoadTypeface);

    /// <summary>The bundled font file.</summary>
    public static string FontPath { get; } =
        Path.Combine(
            Path.GetDirectoryName(typeof(LabelText).Assembly.Location) ?? AppContext.BaseDirectory, "Data", "fonts",
            "DejaVuSans.ttf");

    /// <summary>A font of <paramref name="size"/> pixels, grey-scale anti-aliased without sub-pixel positioning or
    /// hinting, so the same text gives the same pixels wherever Skia runs.</summary>
    public static SKFont CreateFont(float size) => new(BundledTypeface.Value, size)
    {
        Edging = SKFontEdging.Antialias,
        Hinting = SKFontHinting.None,
        Subpixel = false,
        LinearMetrics = true,
    };

    /// <summary>Distance from one baseline to the next, rounded up to whole pixels.</summary>
    public static int LineHeight(SKFont font) => (int)Math.Ceiling(font.Spacing);

    /// <summary>
    /// Breaks <paramref name="text"/> into lines no wider than <paramref name="maxWidth"/>: at spaces first (as the web
    /// UI's grid does), inside a word only when the word alone is too wide. More than <paramref name="maxLines"/> lines
    /// are cut, the last one ending in an ellipsis.
    /// </summary>
    public static List<string> Wrap(string text, SKFont font, float maxWidth, int maxLines)
    {
        text = text.Replace("\r\n", "\n");
        // A "Name: value" label that does not fit on one line breaks after the name first, so the value stays whole.
        var colon = text.IndexOf(": ", StringComparison.Ordinal);
        if (colon > 0 && !text.Contains('\n') && font.MeasureText(text) > maxWidth)
            text = text[..(colon + 1)] + "\n" + text[(colon + 2)..];
        var lines = new List<string>();
        foreach (var paragraph in text.Split('\n'))
        {
            var current = "";
            foreach (var word in paragraph.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            {
                var candidate = current.Length == 0 ? word : current + " " + word;
                if (font.MeasureText(candidate) <= maxWidth)
                {
                    current = candidate;
                    continue;
                }
                if (current.Length > 0) lines.Add(current);
                current = word;
                while (current.Length > 1 && font.MeasureText(current) > maxWidth)
                {
                    var fits = LongestFittingPrefix(current, font, maxWidth);
                    lines.Add(current[..fits]);
                    current = current[fits..];
                }
            }
            lines.Add(current);
        }
        return lines.Count <= maxLines ? lines : Truncate(lines, font, maxWidth, maxLines);
    }

    private static List<string> Truncate(List<string> lines, SKFont font, float maxWidth, int maxLines)
    {
        var kept = lines.Take(Math.Max(1, maxLines)).ToList();
        var last = kept[^1];
        while (last.Length > 0 && font.MeasureText(last + Ellipsis) > maxWidth) last = last[..^1];
        kept[^1] = last.TrimEnd() + Ellipsis;
        return kept;
    }

    // At least one character, so that a column narrower than any glyph still makes progress.
    private static int LongestFittingPrefix(string word, SKFont font, float maxWidth)
    {
        var length = 1;
        while (length < word.Length && font.MeasureText(word[..(length + 1)]) <= maxWidth) length++;
        return length;
    }

    private static SKTypeface LoadTypeface()
    {
        if (!File.Exists(FontPath))
            throw new FileNotFoundException(
                $"The bundled label font is missing: '{FontPath}'. Reinstall the module.", FontPath);
        return SKTypeface.FromFile(FontPath)
            ?? throw new InvalidDataException($"The bundled label font '{FontPath}' could not be read.");
    }
}
