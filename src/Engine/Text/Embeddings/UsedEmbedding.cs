namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>One embedding a generation used: its trigger word and the short hash AUTOMATIC1111 records.</summary>
public sealed record UsedEmbedding(string Name, string ShortHash);
