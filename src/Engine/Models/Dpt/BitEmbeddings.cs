using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Dpt;

/// <summary>transformers' <c>BitEmbeddings</c>, the BiT stem: a 7×7 stride-2 weight-standardised convolution,
/// GroupNorm + ReLU, then a 3×3 stride-2 max pool (TF SAME padding with zeros when
/// <c>embedding_dynamic_padding</c>).</summary>
public sealed class BitEmbeddings : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are the state-dict keys
    private readonly WeightStandardizedConv2d convolution;
    private readonly GroupNorm norm;
#pragma warning restore IDE1006
    private readonly bool _samePadding;
    private readonly bool _dynamicPoolPadding;

    public BitEmbeddings(BitConfig config, Device? device = null, ScalarType? dtype = null)
        : base(nameof(BitEmbeddings))
    {
        _samePadding = config.SamePadding;
        _dynamicPoolPadding = config.EmbeddingDynamicPadding;
        convolution = new WeightStandardizedConv2d(
            config.NumChannels, config.EmbeddingSize, 7, 2, config.SamePadding, 1e-8, device, dtype);
        norm = BitGroupNormActivation.Create(config, config.EmbeddingSize, device, dtype);
        RegisterComponents();
    }

    /// <param name="pixelValues">[B, 3, H, W]</param>
    /// <returns>[B, embedding_size, H/4, W/4] (rounded up with SAME padding)</returns>
    public override Tensor forward(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        var embedding = convolution.forward(pixelValues); // [B, E, H/2, W/2]
        // Without SAME padding the stem pads one zero on every side before the norm (the norm sees those zeros too).
        if (!_samePadding)
            embedding = nn.functional.pad(embedding, new long[] { 1, 1, 1, 1 }, PaddingModes.Constant, 0.0);
        embedding = BitGroupNormActivation.Forward(norm, embedding, activation: true);
        if (_dynamicPoolPadding) embedding = TfSamePadding.Apply(embedding, 3, 2, value: 0.0);
        return nn.functional.max_pool2d(embedding, 3, 2).MoveToOuterDisposeScope(); // [B, E, H/4, W/4]
    }
}
