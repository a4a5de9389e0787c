namespace PSStableDiffusion.Engine.Text;

/// <summary>A prompt that AUTOMATIC1111's parser would reject (it raises on a weight such as
/// <c>(x:1.2.3)</c>).</summary>
public sealed class PromptSyntaxException : ArgumentException
{
    public PromptSyntaxException(string prompt, int position, string reason)
        : base($"Cannot read the prompt at character {position + 1}: {reason}")
    {
        Prompt = prompt;
        Position = position;
    }

    /// <summary>The prompt as given.</summary>
    public string Prompt { get; }

    /// <summary>Zero-based UTF-16 offset of the offending text.</summary>
    public int Position { get; }
}
