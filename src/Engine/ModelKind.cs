namespace PSStableDiffusion.Engine;

/// <summary>
/// Which pipelines a model serves, told by its UNet's <c>in_channels</c> (and class embeddings for the upscaler):
/// 4 = text/image-to-image, 5 = depth-to-image, 7 = x4 upscaler, 9 = inpainting.
/// </summary>
public enum ModelKind { TextToImage, Depth, Upscale, Inpaint }
