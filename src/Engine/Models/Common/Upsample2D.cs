using PSStableDiffusion.Engine.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Models.Common;

#pragma warning disable IDE1006 // field names follow the diffusers state-dict keys

/// <summary>diffusers' <c>Upsample2D</c> with <c>use_conv=True</c>: nearest-neighbour x2 (or to a given size), then a
/// 3x3 convolution.</summary>
/// <remarks>
/// A 3x3 convolution over a nearest-x2 image reads each input pixel up to four times. For an x2 upsample of a large
/// image (the VAE decoder's 128² and 256² levels) it runs instead as four 2x2 convolutions over the input, one per
/// output phase: 4/9 of the multiply-adds and no 4x upsampled copy. See <see cref="PhaseWeights"/>.
/// </remarks>
public sealed class Upsample2D : nn.Module<Tensor, Tensor>
{
    /// <summary>Smallest input H*W that takes the phase path; below it (the UNet's 8²–48² levels) the weight
    /// rearrangement and the wider output cost more than they save (measured: 640 channels at 32²
    /// breaks even).</summary>
    internal const long PhasePathMinPixels = 64 * 64;

    private readonly Conv2d conv;

    public Upsample2D(long channels, long out_channels, Device? device = null, ScalarType? dtype = null)
        : base(nameof(Upsample2D))
    {
        conv = nn.Conv2d(channels, out_channels, 3, stride: 1, padding: 1, device: device, dtype: dtype);
        RegisterComponents();
    }

    /// <param name="input">[B, C, H, W]</param>
    /// <returns>[B, C_out, 2H, 2W]</returns>
    public override Tensor forward(Tensor input) => Forward(input, null);

    /// <param name="input">[B, C, H, W]</param>
    /// <param name="size">Output (height, width); diffusers passes the skip connection's size when the latent is not a
    /// multiple of 2^levels.</param>
    /// <returns>[B, C_out, size or 2H x 2W]</returns>
    public Tensor Forward(Tensor input, long[]? size)
    {
        bool doubles = size is null || (size[0] == 2 * input.shape[2] && size[1] == 2 * input.shape[3]);
        if (doubles && input.shape[2] * input.shape[3] >= PhasePathMinPixels)
            return ForwardByPhase(input);
        using var scope = NewDisposeScope();
        var upsampled = size is null
            // [B, C, 2H, 2W]
            ? nn.functional.interpolate(input, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest)
            : nn.functional.interpolate(input, size: size, mode: InterpolationMode.Nearest); // [B, C, size]
        return conv.forward(upsampled).MoveToOuterDisposeScope();
    }

    /// <summary>conv3x3(nearest_x2(x)) computed as four 2x2 convolutions of x; the result is channels-last.</summary>
    /// <param name="input">[B, C, H, W]</param>
    /// <returns>[B, C_out, 2H, 2W], laid out as [B, 2H, 2W, C_out]</returns>
    internal Tensor ForwardByPhase(Tensor input)
    {
        using var scope = NewDisposeScope();
        long batch = input.shape[0], height = input.shape[2], width = input.shape[3],
        outChannels = conv.weight!.shape[0];
        using var phaseWeights = PhaseWeights(conv.weight!); // [4*C_out, C, 2, 2]
        using var phaseBias = conv.bias is null ? null : conv.bias.repeat(4); // [4*C_out]
        // Padding 1 with a 2x2 kernel: output (i, j) sees input rows i-1..i and columns j-1..j, so phase (dy, dx)
        // of output pixel (2i+dy, 2j+dx) is phases[(dy, dx)][i+dy, j+dx].
        // [B, 4*C_out, H+1, W+1]
        var phases = nn.functional.conv2d(input, phaseWeights, phaseBias, padding: new long[] { 1, 1 });
        // [B, H, 2, W, 2, C_out]
        var output = torch.empty(
            new[] { batch, height, 2, width, 2, outChannels }, dtype: input.dtype, device: input.device);
        for (int dy = 0; dy < 2; dy++)
        {
            for (int dx = 0; dx < 2; dx++)
            {
                var phase = phases.narrow(1, (dy * 2 + dx) * outChannels, outChannels)
                    .narrow(2, dy, height)
                    .narrow(3, dx, width); // [B, C_out, H, W]
                // [B, H, W, C_out] slot of phase (dy, dx)
                output.select(4, dx).select(2, dy).copy_(phase.permute(0, 2, 3, 1));
            }
        }
        // [B, C_out, 2H, 2W]
        return output.view(batch, 2 * height, 2 * width, outChannels).permute(0, 3, 1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Folds a 3x3 kernel <c>w</c> over a nearest-x2 image into four 2x2 kernels over the original image. Output row
    /// 2i reads upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i, so its row taps are (w0, w1+w2) over rows
    /// (i-1, i); output row 2i+1 reads input rows i, i, i+1: taps (w0+w1, w2) over (i, i+1). Columns fold the same way.
    /// </summary>
    /// <param name="weight">[C_out, C, 3, 3]</param>
    /// <returns>[4*C_out, C, 2, 2], phase (dy, dx) in block 2*dy+dx</returns>
    internal static Tensor PhaseWeights(Tensor weight)
    {
        using var scope = NewDisposeScope();
        Tensor Fold(Tensor taps, long dim, int phase) // taps: 3 along dim -> 2 along dim
        {
            var (t0, t1, t2) = (taps.select(dim, 0), taps.select(dim, 1), taps.select(dim, 2));
            return phase == 0
                ? torch.stack(new Tensor[] { t0, t1.ScalarSafe() + t2 }, dim)
                : torch.stack(new Tensor[] { t0.ScalarSafe() + t1, t2 }, dim);
        }
        var blocks = new List<Tensor>(4);
        for (int dy = 0; dy < 2; dy++)
        {
            var rows = Fold(weight, 2, dy); // [C_out, C, 2, 3]
            for (int dx = 0; dx < 2; dx++) blocks.Add(Fold(rows, 3, dx)); // [C_out, C, 2, 2]
        }
        return torch.cat(blocks, 0).MoveToOuterDisposeScope(); // [4*C_out, C, 2, 2]
    }
}
