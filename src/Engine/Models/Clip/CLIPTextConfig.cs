using System.Text.Json;
using System.Text.Json.Serialization;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>
/// The fields of transformers' <c>CLIPTextConfig</c> (<c>text_encoder/config.json</c>) that the text tower needs.
/// Defaults are those of the SD 2.x OpenCLIP ViT-H/14 text tower as diffusers folders store it.
/// </summary>
public sealed class CLIPTextConfig
{
    [JsonPropertyName("vocab_size")] public int VocabSize { get; set; } = 49408;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; set; } = 1024;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; set; } = 4096;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; set; } = 23;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; set; } = 16;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; set; } = 77;
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; set; } = 1e-5;
    /// <summary><c>gelu</c> (exact, erf-based: OpenCLIP / SD 2.x) or <c>quick_gelu</c> (OpenAI CLIP
    /// / SD 1.x).</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; set; } = "gelu";
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; set; } = 512;
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; set; } = 49406;
    [JsonPropertyName("eos_token_id")] public int EosTokenId { get; set; } = 49407;
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; set; } = 1;

    /// <summary>Reads a transformers <c>config.json</c>; unknown fields are ignored.</summary>
    public static CLIPTextConfig Load(string path)
    {
        CLIPTextConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<CLIPTextConfig>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Text encoder config '{path}' is not valid JSON: {e.Message}", e);
        }
        if (config is null) throw new InvalidDataException($"Text encoder config '{path}' is empty (null).");
        config.Validate(path);
        return config;
    }

    /// <summary>Checks the values the model relies on; <paramref name="source"/> names the file in messages.</summary>
    public void Validate(string source = "config")
    {
        static void Positive(int value, string key, string source)
        {
            if (value <= 0) throw new InvalidDataException($"{source}: '{key}' must be positive, got {value}.");
        }
        Positive(VocabSize, "vocab_size", source);
        Positive(HiddenSize, "hidden_size", source);
        Positive(IntermediateSize, "intermediate_size", source);
        Positive(NumHiddenLayers, "num_hidden_layers", source);
        Positive(NumAttentionHeads, "num_attention_heads", source);
        Positive(MaxPositionEmbeddings, "max_position_embeddings", source);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new InvalidDataException(
                $"{source}: 'hidden_size' {HiddenSize} is not divisible by 'num_attention_heads' {NumAttentionHeads}.");
        if (HiddenAct is not ("gelu" or "quick_gelu"))
            throw new InvalidDataException(
                $"{source}: 'hidden_act' '{HiddenAct}' is not supported (gelu or quick_gelu).");
    }
}
