using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using TorchSharp;

namespace PSStableDiffusion.Engine.Pipelines;

/// <summary>
/// What the memory estimate of one call depends on (<see cref="Runtime.MemoryEstimator"/>): the model's architecture
/// and dtypes, the batch, the latent size and the tilings. Taken from a loaded model, or built from configs alone
/// (a full-size model's, to check the budget of a GPU that is not here).
/// </summary>
/// <param name="MappedWeightBytes">Weights that view a mapped file and must stay in the page cache (CPU); 0 on a
/// GPU, where the weights are copies already in use.</param>
internal sealed record MemoryCall(
    UNet2DConditionConfig Unet, AutoencoderKLConfig Vae, torch.ScalarType UnetDType, torch.ScalarType VaeDType,
    int Count, bool Guided, int LatentHeight, int LatentWidth, TilePlan? UnetTiles, TilePlan? DecoderTiles,
    long MappedWeightBytes)
{
    public int VaeScaleFactor => Vae.DownscaleFactor;

    public static MemoryCall Of(StableDiffusionModel model, int count, bool guided, int latentHeight, int latentWidth,
        TilePlan? unetTiles, TilePlan? decoderTiles, long mappedWeightBytes) =>
        new(model.Unet.Config, model.Vae.Config, model.Target.DType, model.VaeDType, count, guided,
            latentHeight, latentWidth, unetTiles, decoderTiles, mappedWeightBytes);
}
