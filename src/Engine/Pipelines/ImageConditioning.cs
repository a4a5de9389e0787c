using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// Pre-processing of the image inputs as diffusers' VaeImageProcessor and the SD 2.x pipelines do it: sizes, masks,
/// depth maps. Resizing goes through the Pillow-identical resampler, as diffusers resizes PIL inputs.
/// </summary>
public static class ImageConditioning
{
    /// <summary>[1, 3, H, W] (or [3, H, W]) float → [1, 3, H, W] float32, checked.</summary>
    public static Tensor NormalizeImage(Tensor image, string what = "InitImage")
    {
        if (!image.is_floating_point())
            throw new ArgumentException($"{what} must be a floating-point tensor in [-1, 1], got {image.dtype}.", what);
        var x = image.dim() == 3 ? image.unsqueeze(0) : image;
        if (x.dim() != 4 || x.shape[0] != 1 || x.shape[1] != 3)
            throw new ArgumentException(
                $"{what} must be [1, 3, H, W] in [-1, 1], got [{string.Join(", ", image.shape)}].", what);
        return x.to(ScalarType.Float32);
    }

    /// <summary>A mask as [1, 1, H, W] float32 from [H, W], [1, H, W] or [1, 1, H, W].</summary>
    public static Tensor NormalizeMask(Tensor mask, string what = "Mask")
    {
        var x = mask.dim() switch { 2 => mask.unsqueeze(0).unsqueeze(0), 3 => mask.unsqueeze(0), _ => mask };
        if (x.dim() != 4 || x.shape[0] != 1 || x.shape[1] != 1)
            throw new ArgumentException(
                $"{what} must be [1, 1, H, W] (or [1, H, W]) in [0, 1], got [{string.Join(", ", mask.shape)}].", what);
        return x.to(ScalarType.Float32);
    }

    /// <summary>Resizes an image tensor in [-1, 1] as Pillow would resize the 8-bit image it stands for (byte-valued
    /// tensors, as <see cref="SDImage.ToTensor"/> makes them, round-trip exactly).</summary>
    public static Tensor ResizeImage(Tensor image, int width, int height, ResizeFilter filter)
    {
        var resized = SDImage.FromTensor(image.cpu()).Resize(width, height, filter);
        return resized.ToTensor(ScalarType.Float32, image.device);
    }

    /// <summary>Resizes a [1, 1, H, W] mask in [0, 1] as Pillow resizes an 8-bit "L" image (diffusers' mask
    /// processor).</summary>
    public static Tensor ResizeMask(Tensor mask, int width, int height, ResizeFilter filter = ResizeFilter.Lanczos)
    {
        var gray = ToGray8(mask).Resize(width, height, filter);
        return gray.ToTensor(normalize: true, ScalarType.Float32, mask.device).unsqueeze(0);        // [1, 1, H, W]
    }

    /// <summary>An 8-bit gray image of a mask in [0, 1]: round(m · 255).</summary>
    public static GrayImage ToGray8(Tensor mask)
    {
        using var scope = torch.NewDisposeScope();
        var m = NormalizeMask(mask);
        var bytes = (m.ScalarSafe().Clamp(0, 1) * 255)
            .Tensor.round()
            .to(ScalarType.Int32)
            .cpu()
            .flatten()
            .data<int>()
            .ToArray();
        return new GrayImage((int)m.shape[3], (int)m.shape[2], 8, bytes.Select(v => (ushort)v).ToArray());
    }

    /// <summary>diffusers' mask binarisation: 0 where m &lt; 0.5, else 1 (1 = repaint).</summary>
    public static Tensor Binarize(Tensor mask) => mask.ScalarSafe().GreaterOrEqual(0.5).to(ScalarType.Float32);

    /// <summary>
    /// Depth-to-image conditioning: the depth map resized bicubic (align_corners false) to the latent size, then scaled
    /// per sample to [-1, 1] by 2 (d − min) / (max − min) − 1. Returns [1, 1, h, w] float32.
    /// </summary>
    public static Tensor ProcessDepthMap(Tensor depth, int latentHeight, int latentWidth)
    {
        using var scope = torch.NewDisposeScope();
        var d = NormalizeDepth(depth).unsqueeze(1);                                                  // [1, 1, H, W]
        d = nn.functional.interpolate(
            d, size: new long[] { latentHeight, latentWidth }, mode: InterpolationMode.Bicubic,
            align_corners: false);                                                                   // [1, 1, h, w]
        var min = d.amin(new long[] { 1, 2, 3 }, keepdim: true);
        var max = d.amax(new long[] { 1, 2, 3 }, keepdim: true);
        if ((max - min).abs().max().item<float>() == 0)
            throw new ArgumentException(
                "The depth map is constant after resizing to the latent size; it carries no depth to condition on.",
                "DepthMap");
        return (2.0f * (d.ScalarSafe() - min) / (max - min) - 1.0f).Tensor.MoveToOuterDisposeScope();
    }

    /// <summary>A depth map as [1, H, W] float32 from [H, W], [1, H, W] or [1, 1, H, W].</summary>
    public static Tensor NormalizeDepth(Tensor depth)
    {
        var x = depth.dim() switch
        {
            2 => depth.unsqueeze(0),
            4 when depth.shape[1] == 1 => depth.squeeze(1),
            _ => depth
        };
        if (x.dim() != 3 || x.shape[0] != 1)
            throw new ArgumentException(
                $"DepthMap must be [1, H, W], got [{string.Join(", ", depth.shape)}].", "DepthMap");
        return x.to(ScalarType.Float32);
    }
}
