namespace PSStableDiffusion.Engine.Text;

/// <summary>How prompt text is read.</summary>
public enum PromptSyntax
{
    /// <summary>As AUTOMATIC1111 reads it for SD 2.x: <c>(x:1.3)</c>, <c>[x]</c>, BREAK, chunks of 75 tokens with
    /// comma backtracking, "Original" emphasis (<see cref="PromptParser"/>, <see cref="PromptChunker"/>).</summary>
    Automatic1111,

    /// <summary>Literal text, cut at the text encoder's 77 tokens with a warning, as diffusers does.</summary>
    None,
}
