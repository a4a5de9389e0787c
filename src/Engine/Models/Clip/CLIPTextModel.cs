using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Clip;

/// <summary>
/// The CLIP text encoder as transformers' <c>CLIPTextModel</c> lays it out (<c>text_model.*</c> keys); Stable
/// Diffusion 2.x stores its OpenCLIP ViT-H text tower this way, cut to its first 23 layers.
/// </summary>
public sealed class CLIPTextModel : nn.Module<Tensor, CLIPTextModelOutput>
{
    /// <summary>Checkpoint keys transformers drops on load: older checkpoints saved the position-id buffer.</summary>
    internal static readonly IReadOnlySet<string> IgnoredCheckpointKeys =
        new HashSet<string>(StringComparer.Ordinal) { "text_model.embeddings.position_ids" };

#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly CLIPTextTransformer text_model;
#pragma warning restore IDE1006

    /// <summary>Builds the model with freshly initialised weights on <paramref name="device"/> (CPU
    /// by default).</summary>
    public CLIPTextModel(CLIPTextConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(CLIPTextModel))
    {
        config.Validate();
        Config = config;
        text_model = new CLIPTextTransformer(config, dtype, device);
        RegisterComponents();
        TensorAccounting.RecordBuilt(this); // one emptied wrapper per parameter made (see there)
        NormInitialization.Reset(this);
    }

    public CLIPTextConfig Config { get; }

    /// <param name="inputIds">[B, T] int64 token ids (T = 77 for Stable Diffusion).</param>
    public override CLIPTextModelOutput forward(Tensor inputIds) =>
        text_model.forward(inputIds, outputHiddenStates: false);

    /// <param name="inputIds">[B, T] int64 token ids.</param>
    /// <param name="outputHiddenStates">Also return the embeddings and every layer's output.</param>
    public CLIPTextModelOutput forward(Tensor inputIds, bool outputHiddenStates) =>
        text_model.forward(inputIds, outputHiddenStates);

    /// <summary>The token-embedding rows of <paramref name="inputIds"/> ([B, T] → [B, T, D]), before
    /// positions.</summary>
    public Tensor EmbedTokens(Tensor inputIds) => text_model.EmbedTokens(inputIds);

    /// <summary>Encodes with <paramref name="tokenEmbeds"/> ([B, T, D]) in place of the table's rows for
    /// <paramref name="inputIds"/>, as transformers' <c>inputs_embeds</c>: how textual-inversion vectors enter without
    /// changing the table.</summary>
    public CLIPTextModelOutput forward(Tensor inputIds, Tensor tokenEmbeds) =>
        text_model.forward(inputIds, outputHiddenStates: false, tokenEmbeds);

    /// <summary>
    /// Loads a diffusers/transformers text encoder folder (<c>config.json</c> + <c>model.safetensors</c>); a pipeline
    /// folder holding <c>text_encoder/</c> is accepted too. The model is returned in eval mode, without gradients.
    /// </summary>
    public static CLIPTextModel FromPretrained(string folder, ScalarType dtype, Device device)
    {
        if (!File.Exists(Path.Combine(folder, "config.json")) &&
            File.Exists(Path.Combine(folder, "text_encoder", "config.json")))
            folder = Path.Combine(folder, "text_encoder");

        var configPath = Path.Combine(folder, "config.json");
        if (!File.Exists(configPath))
            throw new FileNotFoundException($"Text encoder config not found: '{configPath}'.", configPath);
        var config = CLIPTextConfig.Load(configPath);
        return PretrainedWeights.Load("Text encoder", on => new CLIPTextModel(config, dtype, on),
            new[] { Path.Combine(folder, "model.safetensors") }, dtype, device, IgnoredCheckpointKeys);
    }
}
