using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTForDepthEstimation</c> with <c>is_hybrid: true</c> (MiDaS v3 DPT-Hybrid, the estimator of
/// stable-diffusion-2-depth): BiT-ResNet + ViT (<c>dpt</c>), reassemble/fusion <c>neck</c>, and the depth <c>head</c>.
/// Its output is MiDaS' relative inverse depth (larger = nearer), non-negative, at the input resolution.
/// </summary>
public sealed class DPTForDepthEstimation : nn.Module
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly DPTModel dpt;
    private readonly DPTNeck neck;
    private readonly DPTDepthEstimationHead head;
#pragma warning restore IDE1006

    /// <summary>The weights file name transformers writes with <c>safe_serialization</c>.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>Builds the architecture of <paramref name="config"/> (random weights; <c>torch.META</c>
    /// allocates nothing).</summary>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public DPTForDepthEstimation(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTForDepthEstimation))
    {
        config.Validate();
        Config = config;
        dpt = new DPTModel(config, device, dtype);
        neck = new DPTNeck(config, device, dtype);
        head = new DPTDepthEstimationHead(config, device, dtype);
        RegisterComponents();
        NormInitialization.Reset(this);
    }

    public DPTConfig Config { get; }

    /// <summary>Loads <c>config.json</c> and <c>model.safetensors</c> from a transformers folder (diffusers'
    /// <c>depth_estimator/</c>); strict.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="Loading.ModelLoadException">The weights do not match the config's architecture (names the key
    /// and file).</exception>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public static DPTForDepthEstimation FromPretrained(string folder, ScalarType dtype, Device device)
    {
        var config = DPTConfig.FromFile(Path.Combine(folder, "config.json"));
        return PretrainedWeights.Load("Depth estimator", on => new DPTForDepthEstimation(config, on, dtype),
            new[] { Path.Combine(folder, WeightsFileName) }, dtype, device);
    }

    /// <param name="pixelValues">[B, 3, image_size, image_size], as <see cref="DPTImageProcessor"/> makes them</param>
    /// <returns>predicted_depth, [B, image_size, image_size]</returns>
    public Tensor Forward(Tensor pixelValues)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var features = dpt.Forward(pixelValues);
        var fused = neck.Forward(features.NeckInputs).Fused;
        return head.forward(fused[^1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the model and returns every intermediate by the names of the golden fixture: <c>bit_stem</c>,
    /// <c>bit_stage1..3</c>, <c>vit_embeddings</c>, <c>vit_layerN</c>, <c>vit_final_layernorm</c>,
    /// <c>neck_reassembleN</c>,
    /// <c>neck_convN</c>, <c>fusionN</c>, <c>predicted_depth</c>. The caller disposes them.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> ForwardWithIntermediates(Tensor pixelValues)
    {
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var named = new Dictionary<string, Tensor>();
        var features = dpt.Forward(pixelValues, keepAllLayers: true);
        named["bit_stem"] = features.Embeddings.Stem;
        for (int i = 0; i < features.Embeddings.Stages.Count; i++)
            named[$"bit_stage{i + 1}"] = features.Embeddings.Stages[i];
        named["vit_embeddings"] = features.Embeddings.Tokens;
        foreach (var (index, output) in features.LayerOutputs) named[$"vit_layer{index}"] = output;
        named["vit_final_layernorm"] = dpt.FinalLayerNorm(features.LayerOutputs[features.LayerOutputs.Keys.Max()]);
        var neckOutput = neck.Forward(features.NeckInputs);
        for (int i = 0; i < neckOutput.Reassembled.Count; i++) named[$"neck_reassemble{i}"] = neckOutput.Reassembled[i];
        for (int i = 0; i < neckOutput.Projected.Count; i++) named[$"neck_conv{i}"] = neckOutput.Projected[i];
        for (int i = 0; i < neckOutput.Fused.Count; i++) named[$"fusion{i}"] = neckOutput.Fused[i];
        named["predicted_depth"] = head.forward(neckOutput.Fused[^1]);
        foreach (var tensor in named.Values.Distinct(ReferenceEqualityComparer.Instance))
            ((Tensor)tensor!).MoveToOuterDisposeScope();
        return named;
    }
}
