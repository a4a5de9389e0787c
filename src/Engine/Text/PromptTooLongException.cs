namespace PSStableDiffusion.Engine.Text;

/// <summary>A prompt that needs more text-encoder chunks than <see cref="PromptChunker.MaxChunks"/>: each chunk is
/// one more text-encoder pass and widens every cross-attention of every UNet step, so a runaway paste (a whole file
/// in the prompt) is refused before any work rather than run for minutes.</summary>
public sealed class PromptTooLongException : ArgumentException
{
    public PromptTooLongException(int tokenCount, int maxTokens)
        : base(
            $"The prompt has {tokenCount} tokens; at most {maxTokens} are read " +
            $"({maxTokens / PromptChunker.ChunkLength} chunks of {PromptChunker.ChunkLength}). Shorten it.")
    {
        TokenCount = tokenCount;
        MaxTokens = maxTokens;
    }

    public int TokenCount { get; }
    public int MaxTokens { get; }
}
