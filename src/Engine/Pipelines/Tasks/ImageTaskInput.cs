using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>An input that starts from an image: image-to-image, inpainting, depth-to-image and the
/// x4 upscaler.</summary>
public abstract record ImageTaskInput : TaskInput
{
    /// <summary>
    /// The image to start from (the low-resolution image for the upscaler): [1, 3, H, W] in [-1, 1]
    /// (<see cref="SDImage.ToTensor"/>). Its size is the output size unless Width/Height are given; a size that is not
    /// a multiple of the VAE factor is resized down to the nearest multiple (reported through
    /// <see cref="PipelineObserver.Log"/>).
    /// </summary>
    public required Tensor Image { get; init; }

    /// <summary>Recorded in the generation record; null computes it from <see cref="Image"/> (equal to
    /// <see cref="SDImage.ComputeContentHash"/> of the image the tensor came from).</summary>
    public string? SourceImageHash { get; init; }
}
