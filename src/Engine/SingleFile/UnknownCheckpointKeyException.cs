namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>Keys that are neither mapped to a module nor on the list of keys inference never uses.</summary>
public sealed class UnknownCheckpointKeyException : SingleFileCheckpointException
{
    private const int KeysInMessage = 8;

    public UnknownCheckpointKeyException(string filePath, IReadOnlyList<string> keys)
        : base(filePath, Describe(keys)) => Keys = keys;

    /// <summary>Every unknown key, sorted.</summary>
    public IReadOnlyList<string> Keys { get; }

    private static string Describe(IReadOnlyList<string> keys)
    {
        var shown = string.Join(", ", keys.Take(KeysInMessage).Select(k => $"'{k}'"));
        var more = keys.Count > KeysInMessage ? $" and {keys.Count - KeysInMessage} more" : "";
        return $"{keys.Count} unknown key(s) for an SD 2.x checkpoint: {shown}{more}. " +
               "Only the UNet, VAE and OpenCLIP text tower weights and the known unused buffers are accepted.";
    }
}
