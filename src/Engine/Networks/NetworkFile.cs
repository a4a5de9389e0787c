namespace PSStableDiffusion.Engine.Networks;

/// <summary>One file an add-on network (a textual-inversion embedding, a LoRA) can be named by.</summary>
/// <param name="Name">The file name without its extension: the word a prompt uses, as in AUTOMATIC1111.</param>
/// <param name="Path">The full path of the file.</param>
public sealed record NetworkFile(string Name, string Path);
