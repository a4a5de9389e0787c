namespace PSStableDiffusion.Engine.Text;

/// <summary>The chunks of one prompt and its token count as AUTOMATIC1111 reports it.</summary>
/// <param name="Chunks">At least one chunk.</param>
/// <param name="TokenCount">75 per chunk before the last, plus the prompt tokens of the last.</param>
public sealed record PromptChunks(IReadOnlyList<PromptChunk> Chunks, int TokenCount);
