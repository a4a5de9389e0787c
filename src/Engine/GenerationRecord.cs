using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine;

/// <summary>
/// Everything needed to know how an image was made (and to make it again). Stored as JSON in the PNG it
/// describes; property names are snake_case there.
/// </summary>
public sealed class GenerationRecord
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = false,
    };

    public string Prompt { get; set; } = "";
    public string NegativePrompt { get; set; } = "";
    public long Seed { get; set; }
    public int Steps { get; set; }
    public double GuidanceScale { get; set; }

    /// <summary>Scheduler name (diffusers class name, e.g. DPMSolverMultistepScheduler).</summary>
    public string Scheduler { get; set; } = "";

    /// <summary>The scheduler's full config, as diffusers' scheduler_config.json holds it.</summary>
    public JsonObject? SchedulerConfig { get; set; }

    public int Width { get; set; }
    public int Height { get; set; }
    public string? ModelPath { get; set; }

    /// <summary>SHA-256 (hex) of the model's weights.</summary>
    public string? ModelHash { get; set; }

    /// <summary>"same weights as Stability AI's release of &lt;file&gt;" when the weights match a published sum of the
    /// SD 2.x release, else "unverified copy" (community mirrors, fine-tunes, conversions).</summary>
    public string? ModelProvenance { get; set; }

    /// <summary>Compute dtype, e.g. float32 or bfloat16.</summary>
    [JsonPropertyName("dtype")]
    public string? DType { get; set; }

    /// <summary>Why the call ran in <see cref="DType"/> (-Precision Auto's measurement, as asked, or a
    /// replay's record).</summary>
    public string? PrecisionReason { get; set; }

    /// <summary>Device the model ran on, e.g. cpu or cuda:0.</summary>
    public string? Device { get; set; }

    /// <summary>Seconds spent per stage (e.g. load, text_encoder, denoise, vae_decode).</summary>
    public Dictionary<string, double> Timings { get; set; } = new(StringComparer.Ordinal);

    public string? ModuleVersion { get; set; }
    public PipelineKind? PipelineKind { get; set; }

    /// <summary>Index of the image within its batch (0-based).</summary>
    public int ImageIndex { get; set; }

    /// <summary>How many images the call drew together (diffusers' num_images_per_prompt): replaying image
    /// <see cref="ImageIndex"/> exactly needs the same batch, since the noise of the whole batch is one draw.</summary>
    public int BatchSize { get; set; } = 1;

    /// <summary>img2img / inpaint / depth2img strength.</summary>
    public double? Strength { get; set; }

    /// <summary>x4 upscaler noise level.</summary>
    public int? NoiseLevel { get; set; }

    public string? SourceImageHash { get; set; }
    public string? MaskHash { get; set; }

    /// <summary>Depth-to-image: where the depth came from, "given" (a depth map) or "estimated (DPT-Hybrid)".</summary>
    public string? Depth { get; set; }

    /// <summary>SHA-256 (hex) of the depth estimator's weights when the depth was estimated.</summary>
    public string? DepthEstimatorHash { get; set; }

    /// <summary>A depth map (Get-SDDepthMap): whether its levels are min-max normalised (else the prediction scaled by
    /// its peak).</summary>
    public bool? DepthNormalized { get; set; }

    /// <summary>A depth map: the prediction values [low, high] that its levels 0 and 65535 stand for (level v is
    /// low + v · (high − low) / 65535).</summary>
    public double[]? DepthRange { get; set; }
    public double? Eta { get; set; }

    /// <summary>The -KarrasSigmas override the call was given (null: the scheduler's or its name's default).</summary>
    public bool? KarrasSigmas { get; set; }
    /// <summary>The -TiledDecode tile edge in latent pixels when the call asked for a tiled decode (null: not asked).
    /// Tiles change the pixels slightly, so a replay needs it.</summary>
    public int? DecoderTileSize { get; set; }

    public DateTimeOffset? CreatedUtc { get; set; }

    /// <summary>Set on a contact sheet (<see cref="Imaging.ContactSheet"/>): its axes, labels and member images with
    /// their records.</summary>
    public Imaging.ContactSheetRecord? ContactSheet { get; set; }

    /// <summary>How the prompts were read: "Automatic1111" or "None" (literal). Null in records made before prompts
    /// had a syntax (read literally then); a replay reads the prompts the same way.</summary>
    public string? PromptSyntax { get; set; }

    /// <summary>Textual-inversion embeddings the prompts used: name → the first 12 hex digits of the file's SHA-256
    /// (AUTOMATIC1111's "TI hashes"). Null when none.</summary>
    public Dictionary<string, string>? Embeddings { get; set; }
    /// <summary>The LoRAs applied (name, short hash, file, multipliers, whether the prompt named it);
    /// null for none.</summary>
    public List<Lora.LoraUse>? Loras { get; set; }

    /// <summary>The model's display name: the checkpoint file name without extension, or the folder name.</summary>
    [JsonIgnore]
    public string? ModelName
    {
        get
        {
            if (string.IsNullOrWhiteSpace(ModelPath)) return null;
            var trimmed = ModelPath.TrimEnd('/', '\\');
            var name = trimmed[(trimmed.LastIndexOfAny(['/', '\\']) + 1)..];
            foreach (var extension in new[] { ".safetensors", ".ckpt", ".pt", ".bin" })
                if (name.EndsWith(extension, StringComparison.OrdinalIgnoreCase)) return name[..^extension.Length];
            return name;
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <exception cref="JsonException">Not a JSON object of this shape.</exception>
    public static GenerationRecord FromJson(string json) =>
        JsonSerializer.Deserialize<GenerationRecord>(json, JsonOptions)
        ?? throw new JsonException("A generation record must be a JSON object, not null.");

    /// <summary>A deep copy.</summary>
    public GenerationRecord Clone() => FromJson(ToJson());
}
