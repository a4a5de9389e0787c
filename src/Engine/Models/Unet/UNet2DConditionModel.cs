using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Unet;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>
/// diffusers' <c>UNet2DConditionModel</c> for the SD 2.x family (768-v, 512-base, depth, inpainting, x4 upscaler).
/// Module names equal the diffusers state-dict keys.
/// </summary>
public sealed class UNet2DConditionModel : nn.Module
{
    private readonly Conv2d conv_in;
    private readonly Timesteps time_proj;
    private readonly TimestepEmbedding time_embedding;
    private readonly Embedding? class_embedding;
    private readonly ModuleList<UNetDownBlock> down_blocks;
    private readonly UNetMidBlock2DCrossAttn mid_block;
    private readonly ModuleList<UNetUpBlock> up_blocks;
    private readonly GroupNorm conv_norm_out;
    private readonly Conv2d conv_out;
    private readonly Func<Tensor, Tensor> _activation; // in place: applied to the fresh norm output

    /// <summary>Builds the architecture of <paramref name="config"/> with freshly initialised
    /// (random) weights.</summary>
    /// <param name="dtype">Parameter dtype (default float32).</param>
    /// <param name="device">Where the parameters live; <c>torch.META</c> builds the structure
    /// without allocating.</param>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public UNet2DConditionModel(UNet2DConditionConfig config, ScalarType? dtype = null, Device? device = null)
        : base(nameof(UNet2DConditionModel))
    {
        config.Validate();
        Config = config;
        var blocks = config.BlockOutChannels.Length;
        var channels = config.BlockOutChannels;
        var heads = ConfigJson.PerBlock(config.AttentionHeadDim, blocks, "attention_head_dim");
        var layers = ConfigJson.PerBlock(config.LayersPerBlock, blocks, "layers_per_block");
        var crossDims = ConfigJson.PerBlock(config.CrossAttentionDim, blocks, "cross_attention_dim");
        var transformerLayers = ConfigJson.PerBlock(
            config.TransformerLayersPerBlock, blocks, "transformer_layers_per_block");
        var onlyCross = ConfigJson.PerBlock(config.OnlyCrossAttention, blocks, "only_cross_attention");
        var groups = (long)config.NormNumGroups!.Value;
        var eps = config.NormEps;
        var act = config.ActFn;
        long timeEmbedDim = channels[0] * 4;

        conv_in = nn.Conv2d(config.InChannels, channels[0], 3, stride: 1, padding: 1, device: device, dtype: dtype);
        time_proj = new Timesteps(channels[0], config.FlipSinToCos, config.FreqShift);
        time_embedding = new TimestepEmbedding(channels[0], timeEmbedDim, act, device, dtype);
        if (config.NumClassEmbeds is { } classCount)
            class_embedding = nn.Embedding(classCount, timeEmbedDim, device: device, dtype: dtype);

        var downBlocks = new List<UNetDownBlock>();
        var outputChannel = (long)channels[0];
        for (var i = 0; i < blocks; i++)
        {
            var inputChannel = outputChannel;
            outputChannel = channels[i];
            var addDownsample = i < blocks - 1;
            downBlocks.Add(config.DownBlockTypes[i] switch
            {
                "CrossAttnDownBlock2D" => new CrossAttnDownBlock2D(inputChannel, outputChannel, timeEmbedDim, layers[i],
                    transformerLayers[i], groups, eps, act, addDownsample, config.DownsamplePadding, heads[i],
                    crossDims[i],
                    config.UseLinearProjection, onlyCross[i], config.UpcastAttention, device, dtype),
                _ =>
                    new DownBlock2D(
                        inputChannel, outputChannel, timeEmbedDim, layers[i], groups, eps, act, addDownsample,
                    config.DownsamplePadding, device, dtype),
            });
        }
        down_blocks = nn.ModuleList(downBlocks.ToArray());

        mid_block = new UNetMidBlock2DCrossAttn(channels[^1], timeEmbedDim, transformerLayers[^1], groups, eps, act,
            config.MidBlockScaleFactor, heads[^1], crossDims[^1], config.UseLinearProjection, config.UpcastAttention,
            device: device, dtype: dtype);

        // The up path mirrors the down path: per-block settings are read reversed.
        var upBlocks = new List<UNetUpBlock>();
        outputChannel = channels[^1];
        for (var i = 0; i < blocks; i++)
        {
            var reversed = blocks - 1 - i;
            var prevOutputChannel = outputChannel;
            outputChannel = channels[reversed];
            long inputChannel = channels[Math.Max(reversed - 1, 0)];
            var addUpsample = i < blocks - 1;
            upBlocks.Add(config.UpBlockTypes[i] switch
            {
                "CrossAttnUpBlock2D" =>
                    new CrossAttnUpBlock2D(inputChannel, prevOutputChannel, outputChannel, timeEmbedDim,
                    layers[reversed] + 1, transformerLayers[reversed], groups, eps, act, addUpsample, heads[reversed],
                    crossDims[reversed], config.UseLinearProjection, onlyCross[reversed], config.UpcastAttention,
                    device, dtype),
                _ =>
                    new UpBlock2D(
                        inputChannel, prevOutputChannel, outputChannel, timeEmbedDim, layers[reversed] + 1, groups,
                    eps, act, addUpsample, device, dtype),
            });
        }
        up_blocks = nn.ModuleList(upBlocks.ToArray());

        conv_norm_out = nn.GroupNorm(groups, channels[0], eps, affine: true, device: device, dtype: dtype);
        conv_out = nn.Conv2d(channels[0], config.OutChannels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        _activation = Activations.Get(act, inPlace: true);
        RegisterComponents();
        TensorAccounting.RecordBuilt(this); // one emptied wrapper per parameter made (see there)
        NormInitialization.Reset(this);
    }

    /// <summary>The configuration this model was built from.</summary>
    public UNet2DConditionConfig Config { get; }

    /// <summary>Loads <c>config.json</c> and <c>diffusion_pytorch_model.safetensors</c> from a diffusers <c>unet/</c>
    /// folder (strict: every key must match).</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="Loading.ModelLoadException">The weights do not match the config's architecture (names the key
    /// and file).</exception>
    /// <exception cref="NotSupportedException">The config names a field value the engine does not
    /// implement.</exception>
    public static UNet2DConditionModel FromPretrained(string folder, ScalarType dtype, Device device)
    {
        var config = UNet2DConditionConfig.FromFile(Path.Combine(folder, "config.json"));
        return PretrainedWeights.Load("UNet", on => new UNet2DConditionModel(config, dtype, on),
            new[] { Path.Combine(folder, "diffusion_pytorch_model.safetensors") }, dtype, device);
    }

    /// <summary>Predicts the noise (or v) for a batch of latents.</summary>
    /// <param name="sample">[B, in_channels, h, w] latents (plus mask/depth/low-res channels for the
    /// variant models).</param>
    /// <param name="timestep">A scalar tensor or [B] (integer or float).</param>
    /// <param name="encoderHiddenStates">[B, 77, cross_attention_dim] text encoder states.</param>
    /// <param name="classLabels">[B] int64, required when the config has <c>num_class_embeds</c> (x4 upscaler: the
    /// noise level).</param>
    /// <returns>[B, out_channels, h, w]</returns>
    /// <exception cref="ArgumentException">A tensor's shape does not fit the config.</exception>
    /// <exception cref="ArgumentNullException">The model needs class labels and none were given.</exception>
    public Tensor forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates, Tensor? classLabels = null)
    {
        if (sample.dim() != 4 || sample.shape[1] != Config.InChannels)
            throw new ArgumentException(
                $"sample must be [B, {Config.InChannels}, h, w] for this UNet (in_channels " +
                $"{Config.InChannels}), got [{string.Join(", ", sample.shape)}].", nameof(sample));
        if (encoderHiddenStates.dim() != 3
            || encoderHiddenStates.shape[0] != sample.shape[0]
            || encoderHiddenStates.shape[2] != Config.CrossAttentionDim[0])
            throw new ArgumentException(
                $"encoderHiddenStates must be [{sample.shape[0]}, tokens, {Config.CrossAttentionDim[0]}], " +
                $"got [{string.Join(", ", encoderHiddenStates.shape)}].", nameof(encoderHiddenStates));
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var batch = sample.shape[0];

        // 1. time (+ class) embedding
        var timesteps = (timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep).to(sample.device).expand(batch); // [B]
        var timeFeatures = time_proj.forward(timesteps).to(sample.dtype); // [B, C0]
        var emb = time_embedding.forward(timeFeatures); // [B, 4*C0]
        if (class_embedding is not null)
        {
            if (classLabels is null)
                throw new ArgumentNullException(
                    nameof(classLabels),
                    "this UNet has num_class_embeds set and needs class labels (the x4 upscaler's noise level).");
            var classIds = classLabels.to(ScalarType.Int64, sample.device);
            if (classIds.dim() == 0) classIds = classIds.unsqueeze(0).expand(batch);
            emb = emb.ScalarSafe() + class_embedding.forward(classIds).to(sample.dtype); // [B, 4*C0]
        }

        // 2. pre-process
        if (Config.CenterInputSample) sample = 2 * sample.ScalarSafe() - 1.0;
        var hidden = conv_in.forward(sample); // [B, C0, h, w]

        // 3. down path: keep every intermediate state for the skips
        var skips = new List<Tensor> { hidden };
        foreach (var block in down_blocks)
        {
            var states = block.Forward(hidden, emb, encoderHiddenStates);
            skips.AddRange(states);
            hidden = states[^1]; // [B, C_i, h/2^i, w/2^i]
        }

        // 4. mid
        hidden = mid_block.forward(hidden, emb, encoderHiddenStates);

        // 5. up path: each block takes its skips from the end; when the latent is not a multiple of 2^levels the
        // upsampler must hit the next skip's size exactly, as diffusers' forward_upsample_size does.
        for (var i = 0; i < up_blocks.Count; i++)
        {
            var block = up_blocks[i];
            var blockSkips = skips.GetRange(skips.Count - block.SkipCount, block.SkipCount);
            skips.RemoveRange(skips.Count - block.SkipCount, block.SkipCount);
            long[]? upsampleSize = i < up_blocks.Count - 1 ? new[] { skips[^1].shape[2], skips[^1].shape[3] } : null;
            hidden = block.Forward(hidden, blockSkips, emb, encoderHiddenStates, upsampleSize);
        }

        // 6. post-process
        // [B, out_channels, h, w]
        var output = NarrowConvolution.Forward(conv_out, _activation(conv_norm_out.forward(hidden)));
        return output.MoveToOuterDisposeScope();
    }
}
