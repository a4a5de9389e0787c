namespace PSStableDiffusion.Engine.Lora;

/// <summary>What <c>Get-SDLora</c> shows of one LoRA file, read without a model.</summary>
public sealed class LoraInfo
{
    public required string Name { get; init; }
    public required string Path { get; init; }
    public required LoraFormat Format { get; init; }

    /// <summary>The rank of most layers (the largest first where counts tie).</summary>
    public required long Rank { get; init; }

    /// <summary>The alpha most layers store; null when none stores one (scale 1).</summary>
    public double? Alpha { get; init; }

    /// <summary>Which parts it changes: UNet, TextEncoder, and Conv when it changes convolutions ("LoCon").</summary>
    public required string[] Parts { get; init; }

    /// <summary>The model family its layer widths fit: SD 2.x (1024-wide text), SD 1.x (768), SDXL (2048),
    /// or unknown.</summary>
    public required string BaseModel { get; init; }

    /// <summary>AUTOMATIC1111's short hash (what the record's "Lora hashes" carry).</summary>
    public required string Hash { get; init; }

    public required int Layers { get; init; }

    /// <summary>How strongly a generating cmdlet applies it when this object is passed to <c>-Lora</c> (both
    /// networks).</summary>
    public double Multiplier { get; set; } = 1.0;

    /// <summary>Reads <paramref name="path"/> (see <see cref="LoraFile.Open"/> for the exceptions).</summary>
    public static LoraInfo Read(string path)
    {
        using var file = LoraFile.Open(path);
        var layers = file.Layers;
        var parts = new List<string>();
        if (layers.Any(l => IsUnet(l.LookupName))) parts.Add("UNet");
        if (layers.Any(l => !IsUnet(l.LookupName))) parts.Add("TextEncoder");
        if (layers.Any(l => l.IsConvolution)) parts.Add("Conv");
        return new LoraInfo
        {
            Name = file.Name,
            Path = file.Path,
            Format = file.Format,
            Rank = layers.GroupBy(l => l.Rank)
                .OrderByDescending(g => g.Count())
                .ThenByDescending(g => g.Key)
                .First()
                .Key,
            Alpha = layers.Where(l => l.Alpha is not null)
                .GroupBy(l => l.Alpha!.Value)
                .OrderByDescending(g => g.Count())
                .Select(g => (double?)g.Key).FirstOrDefault(),
            Parts = parts.ToArray(),
            BaseModel = BaseModelOf(layers),
            Hash = file.ShortHash,
            Layers = layers.Count,
        };
    }

    private static bool IsUnet(string name) =>
        name.StartsWith("lora_unet_", StringComparison.Ordinal) || name.StartsWith("unet.", StringComparison.Ordinal);

    /// <summary>The family from the text width the cross-attention keys (attn2 to_k) or the text encoder's
    /// q_proj take.</summary>
    private static string BaseModelOf(IReadOnlyList<LoraLayer> layers)
    {
        if (layers.Any(l => l.LookupName.StartsWith("lora_te2_", StringComparison.Ordinal))) return "SDXL";
        var width = layers.Where(l => l.LookupName.Replace('.', '_').EndsWith("attn2_to_k", StringComparison.Ordinal)
                                      || l.LookupName.Replace('.', '_').EndsWith(
                                          "self_attn_q_proj", StringComparison.Ordinal))
            .Select(l => l.Down.shape[1]).FirstOrDefault();
        return width switch
        {
            1024 => "SD 2.x",
            768 => "SD 1.x",
            2048 => "SDXL",
            0 => "unknown",
            _ => $"unknown ({width} wide)",
        };
    }
}
