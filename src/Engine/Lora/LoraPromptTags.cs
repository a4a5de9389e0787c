using System.Globalization;
using System.Text.RegularExpressions;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// AUTOMATIC1111's extra-network syntax for LoRAs in a prompt: <c>&lt;lora:name&gt;</c>, <c>&lt;lora:name:0.8&gt;</c>
/// (both networks), <c>&lt;lora:name:0.5:0.8&gt;</c> (text encoder, UNet) and named <c>te=</c> / <c>unet=</c> arguments
/// (<c>&lt;lora:name:te=0.5:unet=0.8&gt;</c>). The unet multiplier defaults to the te one, which defaults to 1. Tags
/// are removed from the text before prompt parsing, so they never reach the tokenizer.
/// </summary>
public static partial class LoraPromptTags
{
    // A1111's extra-network pattern: <word:arguments>, arguments up to the next '>'.
    [GeneratedRegex(@"<(\w+):([^>]+)>", RegexOptions.CultureInvariant)]
    private static partial Regex ExtraNetwork();

    /// <summary>The prompt without its LoRA tags, and the tags in order. Other extra networks stay
    /// in the text.</summary>
    /// <exception cref="Text.PromptSyntaxException">A tag without a name, or a multiplier that is not
    /// a number.</exception>
    public static (string Prompt, IReadOnlyList<LoraTag> Tags) Extract(string prompt)
    {
        var tags = new List<LoraTag>();
        var cleaned = ExtraNetwork().Replace(prompt, match =>
        {
            if (!string.Equals(match.Groups[1].Value, "lora", StringComparison.OrdinalIgnoreCase)) return match.Value;
            tags.Add(Parse(prompt, match.Index, match.Value, match.Groups[2].Value));
            return "";
        });
        return (cleaned, tags);
    }

    /// <summary>The <c>&lt;lora:…&gt;</c> tags in <paramref name="text"/> as written, without reading them (a negative
    /// prompt's: AUTOMATIC1111 takes extra networks from the prompt only and leaves them in the negative
    /// prompt's text).</summary>
    public static IReadOnlyList<string> TagsIn(string? text) =>
        string.IsNullOrEmpty(text)
            ? []
            : ExtraNetwork()
                .Matches(text)
                .Where(m => string.Equals(m.Groups[1].Value, "lora", StringComparison.OrdinalIgnoreCase))
                .Select(m => m.Value).ToList();

    /// <summary>
    /// <paramref name="request"/> with its prompt's LoRA tags removed; each tag must have its file among the request's
    /// LoRAs (<see cref="LoraRequest.FromPrompt"/>, same name), which the caller looked up by name.
    /// </summary>
    /// <exception cref="ArgumentException">A tag the request has no file for, or a multiplier that is
    /// no number.</exception>
    public static Pipelines.GenerationRequest WithoutTags(Pipelines.GenerationRequest request)
    {
        var (prompt, tags) = Extract(request.Prompt);
        if (tags.Count == 0) return request;
        foreach (var tag in tags)
            if (!request.Loras.Any(l => l.FromPrompt
                && string.Equals(l.Name, tag.Name, StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException(
                    $"The prompt's {tag.Text} names a LoRA this call was given no file for.", "Prompt");
        return request with { Prompt = prompt };
    }

    /// <summary>The tag that applies <paramref name="name"/> with these multipliers, as AUTOMATIC1111 reads it:
    /// <c>&lt;lora:name:0.8&gt;</c> when both are equal, else <c>&lt;lora:name:te:unet&gt;</c>. Null for a name that a
    /// tag cannot hold (empty, or with ':', '&lt;' or '&gt;').</summary>
    public static string? Format(string name, double textEncoderMultiplier, double unetMultiplier)
    {
        if (name.Length == 0 || name.Trim() != name || name.IndexOfAny([':', '<', '>']) >= 0) return null;
        static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);
        return textEncoderMultiplier.Equals(unetMultiplier)
            ? $"<lora:{name}:{Number(textEncoderMultiplier)}>"
            : $"<lora:{name}:{Number(textEncoderMultiplier)}:{Number(unetMultiplier)}>";
    }

    private static LoraTag Parse(string prompt, int position, string text, string arguments)
    {
        var positional = new List<string>();
        var named = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in arguments.Split(':'))
        {
            int equals = item.IndexOf('=');
            if (equals < 0) positional.Add(item.Trim());
            else named[item[..equals].Trim()] = item[(equals + 1)..].Trim();
        }
        var name = positional[0];
        if (name.Length == 0)
            throw new Text.PromptSyntaxException(prompt, position, $"the LoRA tag {text} names no LoRA.");
        double Number(string value) =>
            double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
                && double.IsFinite(number)
                ? number
                : throw new Text.PromptSyntaxException(
                    prompt, position, $"the LoRA tag {text} has '{value}' where a multiplier (a number) belongs.");
        double te = positional.Count > 1 ? Number(positional[1]) : 1.0;
        if (named.TryGetValue("te", out var teText)) te = Number(teText);
        double unet = positional.Count > 2 ? Number(positional[2]) : te;
        if (named.TryGetValue("unet", out var unetText)) unet = Number(unetText);
        return new LoraTag(text, name, te, unet);
    }
}
