namespace PSStableDiffusion.Engine.Lora;

/// <summary>One LoRA for one call: its file and how strongly it changes each network (AUTOMATIC1111's
/// <c>&lt;lora:name:te=…:unet=…&gt;</c>). A multiplier of 0 leaves that network alone.</summary>
/// <param name="Path">The LoRA file (full path).</param>
public sealed record LoraRequest(string Path, double TextEncoderMultiplier = 1.0, double UnetMultiplier = 1.0)
{
    /// <summary>The name the record gives it: the file name without extension unless set.</summary>
    public string Name { get; init; } = System.IO.Path.GetFileNameWithoutExtension(Path);

    /// <summary>Named by a <c>&lt;lora:…&gt;</c> tag of the prompt (a replay finds it there again), rather than given
    /// as a parameter.</summary>
    public bool FromPrompt { get; init; }

    /// <summary>The short hash a replayed record gives this LoRA: a file with another hash is applied with a warning
    /// (another version of the file, so the image may differ), as AUTOMATIC1111 matches "Lora hashes".</summary>
    public string? RecordedHash { get; init; }
}
