using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Schedulers;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>What a pipeline call produced, before it becomes <c>SDImage</c> objects.</summary>
public sealed class GenerationResult : IDisposable
{
    /// <summary>[N, 3, H, W] float32 on the CPU: the VAE output in [-1, 1] (unclamped).</summary>
    public required Tensor Images { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }

    /// <summary>The pipeline that ran.</summary>
    public PipelineKind Kind { get; init; } = PipelineKind.Txt2Img;

    /// <summary>The task's input as it ran (an image input on a depth model becomes a
    /// <see cref="DepthToImageInput"/>).</summary>
    public TaskInput Input { get; init; } = new TextToImageInput();
    public required string SchedulerName { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }
    public required IReadOnlyList<double> Timesteps { get; init; }

    /// <summary>Seconds per stage: text_encoder, denoise, vae_decode (and vae_encode where an image came in).</summary>
    public required IReadOnlyDictionary<string, double> Timings { get; init; }

    /// <summary>How many latent tiles the UNet ran per step, and the VAE decoded (1 = not tiled).</summary>
    public int UnetTiles { get; init; } = 1;
    public int DecoderTiles { get; init; } = 1;

    /// <summary>The textual-inversion embeddings the prompts used, in the order first used.</summary>
    public IReadOnlyList<Text.Embeddings.UsedEmbedding> Embeddings { get; init; } = [];
    /// <summary>The LoRAs the call applied, in order.</summary>
    public IReadOnlyList<Lora.LoraUse> Loras { get; init; } = [];

    public void Dispose() => Images.Dispose();
}
