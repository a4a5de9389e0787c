using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>
/// transformers' <c>DPTViTHybridEmbeddings</c>: the BiT backbone's stage-3 map, projected to the ViT width by a 1×1
/// convolution and flattened into tokens, after a learned CLS token, plus learned position embeddings for the
/// config's <c>image_size / patch_size</c> grid. The input must be <c>image_size</c> square, as transformers requires.
/// </summary>
public sealed class DPTViTHybridEmbeddings : nn.Module, IReplaceableParameters
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly BitBackbone backbone;
    private readonly Conv2d projection;
    private Parameter cls_token; // [1, 1, hidden]
    private Parameter position_embeddings; // [1, 1 + grid², hidden]
#pragma warning restore IDE1006
    private readonly int _imageSize;

    public DPTViTHybridEmbeddings(DPTConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(DPTViTHybridEmbeddings))
    {
        _imageSize = config.ImageSize;
        backbone = new BitBackbone(config.Bit, device, dtype);
        projection = nn.Conv2d(config.BackboneFeatureChannels, config.HiddenSize, 1, device: device, dtype: dtype);
        long positions = (long)config.GridSize * config.GridSize + 1;
        cls_token = new Parameter(
            torch.zeros(new long[] { 1, 1, config.HiddenSize }, dtype ?? ScalarType.Float32, device ?? torch.CPU),
            requires_grad: false);
        position_embeddings = new Parameter(
            torch.zeros(
                new long[] { 1, positions, config.HiddenSize }, dtype ?? ScalarType.Float32, device ?? torch.CPU),
            requires_grad: false);
        RegisterComponents();
    }

    /// <param name="pixelValues">[B, 3, image_size, image_size]</param>
    /// <exception cref="ArgumentException">The pixels are not image_size square, or the BiT grid does not match the
    /// position embeddings.</exception>
    public DPTHybridEmbeddingOutput Forward(Tensor pixelValues)
    {
        long height = pixelValues.shape[2], width = pixelValues.shape[3];
        if (height != _imageSize || width != _imageSize)
            throw new ArgumentException(
                $"DPT-Hybrid takes {_imageSize}x{_imageSize} pixels (config image_size), got {width}x{height}.",
                nameof(pixelValues));
        using var scope = NewDisposeScope();
        var (stem, stages) = backbone.ForwardFeatures(pixelValues);
        var features = projection.forward(stages[^1]); // [B, hidden, h, w]
        long batch = features.shape[0], hidden = features.shape[1];
        var patches = features.flatten(2).transpose(1, 2); // [B, h·w, hidden]
        if (patches.shape[1] + 1 != position_embeddings.shape[1])
            throw new ArgumentException(
                $"The BiT map has {patches.shape[1]} cells but the position embeddings cover " +
                $"{position_embeddings.shape[1] - 1}: " +
                "config.json's image_size, patch_size and backbone do not agree.", nameof(pixelValues));
        var cls = cls_token.to(features.dtype).expand(batch, 1, hidden); // [B, 1, hidden]
        // [B, 1 + h·w, hidden]
        Tensor tokens = torch.cat(new[] { cls, patches }, 1).ScalarSafe() + position_embeddings.to(features.dtype);
        return new DPTHybridEmbeddingOutput(tokens.MoveToOuterDisposeScope(), stem.MoveToOuterDisposeScope(),
            stages.Select(s => s.MoveToOuterDisposeScope()).ToList());
    }

    bool IReplaceableParameters.CanReplace(string name) => name is nameof(cls_token) or nameof(position_embeddings);

    void IReplaceableParameters.Replace(string name, Parameter parameter)
    {
        var old = name == nameof(cls_token) ? cls_token : position_embeddings;
        if (name == nameof(cls_token)) cls_token = parameter;
        else position_embeddings = parameter;
        ConditionallyRegisterParameter(name, parameter);
        old.Dispose();
    }
}
