using System.Globalization;
using System.Text;

namespace PSStableDiffusion.Engine.Text;

/// <summary>
/// Reads emphasis and BREAK the way AUTOMATIC1111's <c>parse_prompt_attention</c> does (modules/prompt_parser.py):
/// <c>(x)</c> multiplies the weight by 1.1, <c>[x]</c> divides it by 1.1, <c>(x:1.3)</c> multiplies it by 1.3,
/// nesting multiplies, <c>\( \) \[ \] \\</c> are literal, a bracket left open applies to the rest of the prompt,
/// a closer with nothing open is text, neighbouring runs of equal weight merge, and a whole word <c>BREAK</c> with the
/// whitespace around it becomes <see cref="PromptFragment.Break"/>.
/// The scan works on code points with Python's definitions of whitespace, digits and word characters, because the
/// reference is a Python regular expression over str; weights are doubles multiplied in the reference's order, so the
/// results are the same bits (tests/golden/prompts/parser.json).
/// </summary>
public static class PromptParser
{
    private const double RoundMultiplier = 1.1;
    private const double SquareMultiplier = 1 / 1.1;

    /// <summary>The fragments of <paramref name="prompt"/>; never empty (an empty prompt is one empty
    /// fragment).</summary>
    /// <exception cref="PromptSyntaxException">A weight that Python's float() rejects, such as <c>(x:1.2.3)</c>;
    /// AUTOMATIC1111 fails on those too.</exception>
    public static IReadOnlyList<PromptFragment> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var fragments = new List<(string Text, double Weight)>();
        var openRound = new Stack<int>();
        var openSquare = new Stack<int>();
        int i = 0;
        while (i < prompt.Length)
        {
            char c = prompt[i];
            if (c == '\\')
            {
                bool escape = i + 1 < prompt.Length && prompt[i + 1] is '(' or ')' or '[' or ']' or '\\';
                fragments.Add((escape ? prompt[i + 1].ToString() : "", 1.0)); // a lone backslash vanishes
                i += escape ? 2 : 1;
            }
            else if (c == '(') { openRound.Push(fragments.Count); i++; }
            else if (c == '[') { openSquare.Push(fragments.Count); i++; }
            else if (c == ':') i = ReadColon(prompt, i, fragments, openRound);
            else if (c == ')' && openRound.Count > 0) { Scale(fragments, openRound.Pop(), RoundMultiplier); i++; }
            else if (c == ']' && openSquare.Count > 0) { Scale(fragments, openSquare.Pop(), SquareMultiplier); i++; }
            else if (c is ')' or ']') { fragments.Add((c.ToString(), 1.0)); i++; }
            else
            {
                int end = i;
                while (end < prompt.Length && prompt[end] is not ('\\' or '(' or ')' or '[' or ']' or ':')) end++;
                AddSplitAtBreaks(fragments, prompt[i..end]);
                i = end;
            }
        }
        // The reference walks the brackets left open from the first opened; products of doubles depend on the order.
        foreach (int start in openRound.Reverse()) Scale(fragments, start, RoundMultiplier);
        foreach (int start in openSquare.Reverse()) Scale(fragments, start, SquareMultiplier);
        if (fragments.Count == 0) fragments.Add(("", 1.0));
        return MergeEqualNeighbours(fragments);
    }

    /// <summary>At a ':' — either a weighted closer ":&lt;number&gt;)" (whitespace allowed around the number) or
    /// text. Returns the index after what was consumed.</summary>
    private static int ReadColon(string prompt, int colon, List<(string, double)> fragments, Stack<int> openRound)
    {
        int p = SkipPythonSpace(prompt, colon + 1);
        int numberStart = p;
        if (p < prompt.Length && prompt[p] is '+' or '-') p++;
        int digitsStart = p;
        while (p < prompt.Length && (prompt[p] == '.' || IsPythonDecimal(prompt, p, out _)))
            p += char.IsSurrogatePair(prompt, p) ? 2 : 1;
        int numberEnd = p;
        p = SkipPythonSpace(prompt, p);
        bool weightedCloser = numberEnd > digitsStart && p < prompt.Length && prompt[p] == ')';
        if (!weightedCloser)
        {
            fragments.Add((":", 1.0));
            return colon + 1;
        }
        if (openRound.Count == 0)
        {
            fragments.Add((prompt[colon..(p + 1)], 1.0)); // nothing to close: the whole match is text
            return p + 1;
        }
        Scale(fragments, openRound.Pop(), ParsePythonFloat(prompt, numberStart, numberEnd));
        return p + 1;
    }

    /// <summary>float() of a match of <c>[+-]?[.\d]+</c>, which Python computes correctly rounded, as
    /// .NET does.</summary>
    private static double ParsePythonFloat(string prompt, int start, int end)
    {
        var ascii = new StringBuilder();
        for (int k = start; k < end; k += char.IsSurrogatePair(prompt, k) ? 2 : 1)
            ascii.Append(IsPythonDecimal(prompt, k, out int digit) ? (char)('0' + digit) : prompt[k]);
        string text = ascii.ToString();
        if (text.Count(ch => ch == '.') > 1 || !text.Any(char.IsAsciiDigit)
            || !double.TryParse(
                text, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture,
                out double value))
            throw new PromptSyntaxException(
                prompt, start, $"'{prompt[start..end]}' is not a number, so the weight cannot be read.");
        return value;
    }

    private static void Scale(List<(string Text, double Weight)> fragments, int from, double factor)
    {
        for (int k = from; k < fragments.Count; k++) fragments[k] = (fragments[k].Text, fragments[k].Weight * factor);
    }

    /// <summary>Python's <c>re.split(r"\s*\bBREAK\b\s*", text)</c>, with a break marker between the parts.</summary>
    private static void AddSplitAtBreaks(List<(string, double)> fragments, string text)
    {
        int partStart = 0, searchFrom = 0;
        while (FindBreak(text, searchFrom) is int breakAt)
        {
            int matchStart = breakAt;
            while (matchStart > partStart && PrecedingRune(text, matchStart) is { } r && IsPythonSpace(r))
                matchStart -= r.Utf16SequenceLength;
            int matchEnd = SkipPythonSpace(text, breakAt + PromptFragment.BreakText.Length);
            fragments.Add((text[partStart..matchStart], 1.0));
            fragments.Add((PromptFragment.BreakText, -1));
            partStart = searchFrom = matchEnd;
        }
        fragments.Add((text[partStart..], 1.0));
    }

    /// <summary>The next "BREAK" at or after <paramref name="from"/> with a word boundary on both sides.</summary>
    private static int? FindBreak(string text, int from)
    {
        for (int at = text.IndexOf(PromptFragment.BreakText, from, StringComparison.Ordinal); at >= 0;
             at = text.IndexOf(PromptFragment.BreakText, at + 1, StringComparison.Ordinal))
        {
            int after = at + PromptFragment.BreakText.Length;
            bool startsWord = at == 0 || !IsPythonWord(PrecedingRune(text, at)!.Value);
            bool endsWord = after == text.Length
                || !Rune.TryGetRuneAt(text, after, out var next) || !IsPythonWord(next);
            if (startsWord && endsWord) return at;
        }
        return null;
    }

    private static List<PromptFragment> MergeEqualNeighbours(List<(string Text, double Weight)> fragments)
    {
        var merged = new List<PromptFragment>(fragments.Count);
        foreach (var (text, weight) in fragments)
        {
            if (merged.Count > 0 && merged[^1].Weight == weight)
                merged[^1] = merged[^1] with { Text = merged[^1].Text + text };
            else merged.Add(new PromptFragment(text, weight));
        }
        return merged;
    }

    private static int SkipPythonSpace(string text, int p)
    {
        while (p < text.Length && Rune.TryGetRuneAt(text, p, out var r) && IsPythonSpace(r)) p += r.Utf16SequenceLength;
        return p;
    }

    private static Rune? PrecedingRune(string text, int index)
    {
        if (index <= 0) return null;
        if (index >= 2 && char.IsSurrogatePair(text[index - 2], text[index - 1]))
            return Rune.GetRuneAt(text, index - 2);
        return Rune.TryCreate(text[index - 1], out var r) ? r : Rune.ReplacementChar;
    }

    /// <summary>Python's str.isspace(), which its <c>\s</c> follows: .NET's list plus the separators
    /// U+001C–U+001F.</summary>
    private static bool IsPythonSpace(Rune r) => Rune.IsWhiteSpace(r) || r.Value is >= 0x1C and <= 0x1F;

    /// <summary>Python's <c>\d</c> (Unicode decimal digits, category Nd) at <paramref name="index"/>.</summary>
    private static bool IsPythonDecimal(string text, int index, out int digit)
    {
        digit = -1;
        if (!Rune.TryGetRuneAt(text, index, out var r)
                || Rune.GetUnicodeCategory(r) != UnicodeCategory.DecimalDigitNumber)
            return false;
        digit = (int)Rune.GetNumericValue(r);
        return digit is >= 0 and <= 9;
    }

    /// <summary>Python's <c>\w</c>: letters, numbers (str.isalnum) and the underscore.</summary>
    private static bool IsPythonWord(Rune r) => r.Value == '_' || Rune.IsLetter(r) || Rune.GetUnicodeCategory(r) is
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
}
