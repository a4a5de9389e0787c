namespace PSStableDiffusion.Engine.Text;

/// <summary>A run of prompt text and the emphasis weight it carries (1.0 = plain).</summary>
/// <remarks>A chunk break is the fragment ("BREAK", −1), exactly as AUTOMATIC1111 represents it, so that its quirks
/// carry over: a BREAK inside brackets gets its weight multiplied, stops being a break and is read
/// as the word.</remarks>
public readonly record struct PromptFragment(string Text, double Weight)
{
    public const string BreakText = "BREAK";

    public static PromptFragment Break => new(BreakText, -1);

    /// <summary>True for the chunk-break marker (and only where A1111 also treats it as one).</summary>
    public bool IsBreak => Weight == -1 && Text == BreakText;
}
