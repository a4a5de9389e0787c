using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Lora;

/// <summary>
/// One adapted layer as the file stores it: the low-rank factors (float32, CPU), their optional CP core
/// (<c>lora_mid</c>), and the alpha or explicit scale. The change to the layer's weight is
/// <c>Scale × up @ down</c> (with <c>mid</c> between them when present).
/// </summary>
/// <param name="Name">The module name with the file's prefix and no suffix, e.g.
/// <c>lora_unet_down_blocks_0_attentions_0_proj_in</c>
/// or <c>unet.down_blocks.0.attentions.0.proj_in</c>: what an error names.</param>
/// <param name="LookupName">The name the key map looks up (old diffusers names already turned into PEFT ones).</param>
/// <param name="Down">[r, in] or [r, in, kh, kw] (or [r, in, 1, 1] with <paramref name="Mid"/>).</param>
/// <param name="Up">[out, r] or [out, r, 1, 1].</param>
/// <param name="Mid">LyCORIS CP core [r, r, kh, kw], or null.</param>
/// <param name="Alpha">The stored alpha; null when the file has none.</param>
/// <param name="ExplicitScale">A stored <c>scale</c>: it replaces alpha / rank.</param>
public sealed record LoraLayer(string Name, string LookupName, Tensor Down, Tensor Up, Tensor? Mid, double? Alpha,
    double? ExplicitScale) : IDisposable
{
    /// <summary>The rank: the down factor's first dimension.</summary>
    public long Rank => Down.shape[0];

    /// <summary><c>scale</c> when stored, else alpha / rank, else 1.</summary>
    public double Scale => ExplicitScale ?? (Alpha is { } alpha ? alpha / Rank : 1.0);

    /// <summary>Whether the layer is a convolution (4-D factors).</summary>
    public bool IsConvolution => Down.dim() == 4 && (Down.shape[2] != 1 || Down.shape[3] != 1 || Mid is not null);

    /// <summary>
    /// <c>up @ down</c> (no scale) as a weight-shaped update: [out, in] for linear factors,
    /// [out, in, kh, kw] for convolution factors; with a CP core, Σ_nm mid[n,m,k,l]·up[i,n]·down[m,j].
    /// </summary>
    public Tensor Product()
    {
        using var scope = NewDisposeScope();
        var up = Up.flatten(1);                                                                     // [out, r]
        Tensor product;
        if (Mid is not null)
        {
            var down = Down.flatten(1);                                                             // [r, in]
            product = einsum("nmkl,in,mj->ijkl", Mid, up, down);                                    // [out, in, kh, kw]
        }
        else
        {
            product = up.matmul(Down.flatten(1));                                                   // [out, in·kh·kw]
            if (Down.dim() == 4)
                // [out, in, kh, kw]
                product = product.reshape(Up.shape[0], Down.shape[1], Down.shape[2], Down.shape[3]);
        }
        return product.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Down.Dispose();
        Up.Dispose();
        Mid?.Dispose();
    }
}
