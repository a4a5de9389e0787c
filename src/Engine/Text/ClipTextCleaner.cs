using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// The text clean-up Hugging Face's <c>CLIPTokenizer</c> applies before BPE when ftfy is installed (as in the
/// diffusers reference): ftfy's <c>fix_text</c>, whitespace clean-up, lower-casing. The ftfy part is our own
/// re-implementation of the fixes that matter for prompts, repeated until the text stops changing as ftfy does:
/// <list type="bullet">
/// <item>HTML entities ending in ';' (skipped when the text holds a literal '&lt;'): HTML 4 named entities and numeric
/// references. ftfy also knows the HTML 5 names and all-caps variants (&amp;EACUTE;); those stay as written.</item>
/// <item>UTF-8 mojibake (UTF-8 read as Windows-1252 or Latin-1, e.g. "cafÃ©", "â€œ"): a narrower rule than ftfy's
/// statistical one, see <see cref="FixMojibake"/>.</item>
/// <item>C1 controls read as Windows-1252, Latin ligatures (ﬁ → fi), half/full-width forms, curly quotes, line
/// breaks, lone surrogates, terminal escapes, unwanted control characters, NFC.</item>
/// </list>
/// </summary>
public static partial class ClipTextCleaner
{
    private const int MaxFixPasses = 16;

    /// <summary>fix_text, then whitespace runs to one space and trimmed, then lower-cased (Python
    /// <c>str.lower</c>).</summary>
    public static string Clean(string text) => PythonLower(CleanWhitespace(FixText(text)));

    /// <summary>The ftfy subset described on the class. Works line by line, as ftfy does.</summary>
    public static string FixText(string text)
    {
        if (text.Length == 0) return text;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++) lines[i] = FixSegment(lines[i]);
        return string.Join('\n', lines);
    }

    private static string FixSegment(string text)
    {
        // ftfy leaves entities alone in text that looks like HTML markup.
        bool unescapeHtml = !text.Contains('<');
        for (int pass = 0; pass < MaxFixPasses; pass++)
        {
            string before = text;
            if (unescapeHtml) text = UnescapeHtml(text);
            text = FixMojibake(text);
            text = FixC1Controls(text);
            text = FixLatinLigatures(text);
            text = FixCharacterWidth(text);
            text = UncurlQuotes(text);
            text = FixLineBreaks(text);
            text = FixSurrogates(text);
            text = TerminalEscape().Replace(text, "");
            text = RemoveControlCharacters(text);
            text = text.Normalize(NormalizationForm.FormC);
            if (text == before) break;
        }
        return text;
    }

    /// <summary>Python <c>re.sub(r"\s+", " ", text).strip()</c>.</summary>
    public static string CleanWhitespace(string text)
    {
        var builder = new StringBuilder(text.Length);
        bool pendingSpace = false;
        foreach (var rune in text.EnumerateRunes())
        {
            if (IsPythonSpace(rune))
            {
                pendingSpace = builder.Length > 0;
                continue;
            }
            if (pendingSpace) builder.Append(' ');
            pendingSpace = false;
            builder.Append(rune.ToString());
        }
        return builder.ToString();
    }

    /// <summary>Python's <c>str.isspace</c> (Unicode White_Space plus the ASCII separators U+001C..U+001F).</summary>
    public static bool IsPythonSpace(Rune rune) => Rune.IsWhiteSpace(rune) || rune.Value is >= 0x1C and <= 0x1F;

    /// <summary>Python <c>str.lower()</c>: invariant lower case plus its two context rules that .NET lacks.</summary>
    public static string PythonLower(string text)
    {
        // Full case mapping: U+0130 (İ) becomes i + combining dot, not a plain i.
        var lowered = text.Replace("\u0130", "i\u0307", StringComparison.Ordinal).ToLowerInvariant();
        if (!text.Contains('\u03A3')) return lowered;
        // Final sigma: a capital sigma that ends a word becomes ς.
        var chars = lowered.ToCharArray();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] != '\u03A3') continue;
            bool letterBefore = i > 0 && char.IsLetter(text[i - 1]);
            bool letterAfter = i + 1 < text.Length && char.IsLetter(text[i + 1]);
            if (letterBefore && !letterAfter && i < chars.Length && chars[i] == '\u03C3') chars[i] = '\u03C2';
        }
        return new string(chars);
    }

    // ---- ftfy-style fixes -------------------------------------------------------------------------------------

    [GeneratedRegex("&#?[0-9A-Za-z]{1,24};")]
    private static partial Regex HtmlEntity();

    [GeneratedRegex("\u001b\\[[0-9;]*[A-Za-z]")]
    private static partial Regex TerminalEscape();

    private static string UnescapeHtml(string text) =>
        !text.Contains('&') ? text : HtmlEntity().Replace(text, match =>
        {
            string entity = match.Value;
            if (entity[1] == '#') return DecodeNumericReference(entity) ?? entity;
            string decoded = WebUtility.HtmlDecode(entity);
            return decoded.Contains(';') ? entity : decoded;
        });

    /// <summary>Python <c>html.unescape</c> of one complete numeric reference, or null when it is not one.</summary>
    private static string? DecodeNumericReference(string entity)
    {
        var digits = entity.AsSpan(2, entity.Length - 3);
        bool hex = digits.Length > 0 && (digits[0] == 'x' || digits[0] == 'X');
        if (hex) digits = digits[1..];
        if (digits.Length == 0) return null;
        long value = 0;
        foreach (char c in digits)
        {
            int digit = hex
                ? (char.IsAsciiHexDigit(c) ? Convert.ToInt32(c.ToString(), 16) : -1)
                : (char.IsAsciiDigit(c) ? c - '0' : -1);
            if (digit < 0) return null;
            value = Math.Min(value * (hex ? 16 : 10) + digit, 0x110000);
        }
        if (value is >= 0x80 and <= 0x9F) return Windows1252Decode((byte)value);
        if (value == 0 || value >= 0x110000 || value is >= 0xD800 and <= 0xDFFF) return "\uFFFD";
        return char.ConvertFromUtf32((int)value);
    }

    /// <summary>
    /// Our narrower take on ftfy's mojibake repair: inside a run of non-ASCII characters that Windows-1252 (or
    /// Latin-1) can encode, each sequence whose bytes form one valid UTF-8 character with a lead byte of the common
    /// mojibake kinds is decoded: C2-C5 (Latin-1 supplement and Latin Extended-A, "Ã©" → é), E2 (punctuation,
    /// "â€œ" → “) and F0 (emoji, "ðŸ"...). Other lead bytes (ß, Ñ, ã, ...) begin ordinary words in European languages
    /// too often to be touched without ftfy's statistics.
    /// </summary>
    public static string FixMojibake(string text)
    {
        StringBuilder? builder = null;
        int copied = 0;
        Span<byte> bytes = stackalloc byte[4];
        for (int i = 0; i < text.Length; i++)
        {
            if (!TryEncode1252(text[i], out byte lead) || lead < 0x80) continue;
            int length = lead switch { >= 0xC2 and <= 0xC5 => 2, 0xE2 => 3, 0xF0 => 4, _ => 0 };
            if (length == 0 || i + length > text.Length) continue;
            bytes[0] = lead;
            bool valid = true;
            for (int k = 1; k < length && valid; k++)
                valid = TryEncode1252(text[i + k], out bytes[k]) && bytes[k] is >= 0x80 and <= 0xBF;
            // F0 must be followed by 90..BF, or it would be an overlong encoding.
            if (!valid || (lead == 0xF0 && bytes[1] < 0x90)) continue;
            string decoded = Encoding.UTF8.GetString(bytes[..length]);
            if (decoded.Contains('\uFFFD')) continue;
            builder ??= new StringBuilder(text.Length);
            builder.Append(text, copied, i - copied).Append(decoded);
            i += length - 1;
            copied = i + 1;
        }
        return builder is null ? text : builder.Append(text, copied, text.Length - copied).ToString();
    }

    // Windows-1252 bytes 0x80..0x9F; the five it leaves undefined map to the C1 control of the same number,
    // as in ftfy's "sloppy" codec.
    private const string Windows1252High =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    private static string Windows1252Decode(byte value) => Windows1252High[value - 0x80].ToString();

    private static bool TryEncode1252(char c, out byte value)
    {
        // Latin-1 (C1 controls included, as when mojibake was decoded as Latin-1) or a Windows-1252 character.
        if (c <= '\u00FF') { value = (byte)c; return true; }
        int index = Windows1252High.IndexOf(c);
        value = (byte)(0x80 + index);
        return index >= 0;
    }

    private static string FixC1Controls(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\u0080', '\u009F')) return text;
        var chars = text.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
            if (chars[i] is >= '\u0080' and <= '\u009F') chars[i] = Windows1252High[chars[i] - 0x80];
        return new string(chars);
    }

    private static readonly Dictionary<char, string> Ligatures = new()
    {
        ['\u0132'] = "IJ", ['\u0133'] = "ij", ['\u0149'] = "\u02BCn",
        ['\u01F1'] = "DZ", ['\u01F2'] = "Dz", ['\u01F3'] = "dz",
        ['\u01C4'] = "D\u017D", ['\u01C5'] = "D\u017E", ['\u01C6'] = "d\u017E",
        ['\u01C7'] = "LJ", ['\u01C8'] = "Lj", ['\u01C9'] = "lj",
        ['\u01CA'] = "NJ", ['\u01CB'] = "Nj", ['\u01CC'] = "nj",
        ['\uFB00'] = "ff", ['\uFB01'] = "fi", ['\uFB02'] = "fl", ['\uFB03'] = "ffi", ['\uFB04'] = "ffl",
        ['\uFB05'] = "\u017Ft", ['\uFB06'] = "st",
    };

    private static string FixLatinLigatures(string text) => ReplaceChars(text, c => Ligatures.GetValueOrDefault(c));

    /// <summary>Half/full-width forms (U+FF01..U+FFEF) to their NFKC form; the ideographic space to a space.</summary>
    private static string FixCharacterWidth(string text) => ReplaceChars(text, c =>
    {
        if (c == '\u3000') return " ";
        if (c is < '\uFF01' or > '\uFFEF') return null;
        string normal = c.ToString().Normalize(NormalizationForm.FormKC);
        return normal == c.ToString() ? null : normal;
    });

    private static string UncurlQuotes(string text) => ReplaceChars(text, c => c switch
    {
        '\u02BC' or (>= '\u2018' and <= '\u201B') => "'",
        >= '\u201C' and <= '\u201F' => "\"",
        _ => null,
    });

    private static string FixLineBreaks(string text) =>
        text.Replace("\r\n", "\n", StringComparison.Ordinal)
            .Replace('\r', '\n').Replace('\u2028', '\n').Replace('\u2029', '\n').Replace('\u0085', '\n');

    private static string FixSurrogates(string text)
    {
        if (!text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF')) return text;
        var builder = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                builder.Append(c).Append(text[++i]);
            }
            else builder.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
        }
        return builder.ToString();
    }

    /// <summary>ASCII controls except tab/newline/form feed/carriage return, DEL, deprecated Arabic format controls,
    /// the BOM and interlinear annotation characters.</summary>
    private static string RemoveControlCharacters(string text) => ReplaceChars(text, c => c switch
    {
        (>= '\u0000' and <= '\u0008') or '\u000B' or (>= '\u000E' and <= '\u001F') or '\u007F' => "",
        (>= '\u206A' and <= '\u206F') or '\uFEFF' or (>= '\uFFF9' and <= '\uFFFC') => "",
        _ => null,
    });

    private static string ReplaceChars(string text, Func<char, string?> replacement)
    {
        StringBuilder? builder = null;
        for (int i = 0; i < text.Length; i++)
        {
            string? replaced = replacement(text[i]);
            if (replaced is null)
            {
                builder?.Append(text[i]);
                continue;
            }
            builder ??= new StringBuilder(text.Length).Append(text, 0, i);
            builder.Append(replaced);
        }
        return builder?.ToString() ?? text;
    }
}
