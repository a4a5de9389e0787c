namespace PSStableDiffusion.Engine.Text.Embeddings;

/// <summary>An embedding the prompt uses whose vectors are not as wide as the text encoder's (a file made for SD 1.x,
/// 768 wide, with an SD 2.x model, 1024 wide).</summary>
public sealed class EmbeddingWidthException : IOException
{
    public EmbeddingWidthException(string name, string path, int width, int expected)
        : base($"The embedding '{name}' ('{path}') has vectors {width} wide " +
            $"but this model's text encoder takes {expected}" +
            (width == 768 && expected == 1024
                ? " (it was made for SD 1.x; SD 2.x needs embeddings trained for SD 2.x)."
                : "."))
    {
        Name = name;
        FilePath = path;
        Width = width;
        Expected = expected;
    }

    public string Name { get; }
    public string FilePath { get; }
    public int Width { get; }
    public int Expected { get; }
}
