using System.Text.Json;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Models.Configs;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.FullSize;

/// <summary>
/// The full-size SD 2.1 768-v architecture (real configs, random weights) runs one 512×512 text-to-image step and a
/// decode on the CPU: text encoder on the [uncond, cond] batch, one UNet call with CFG, a DDIM step, the VAE decode.
/// This proves the real shapes work end to end; the benchmark measures their speed.
/// </summary>
public class FullSizeStepTests(ITestOutputHelper output)
{
    [Fact]
    public void Sd21FullSizeRunsOne512StepAndDecodes()
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(0);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var textConfig = JsonSerializer.Deserialize<CLIPTextConfig>(KnownModelConfigs.ReadJson("sd21-text_encoder.json"))!;
        using var textEncoder = new CLIPTextModel(textConfig);
        textEncoder.eval();
        var ids = torch.zeros(new long[] { 2, 77 }, ScalarType.Int64);                  // [2, 77]: padding only
        ids[.., 0] = 49406; ids[.., 1] = 49407;
        var embeds = textEncoder.forward(ids).LastHiddenState;                            // [2, 77, 1024]
        Assert.Equal(new long[] { 2, 77, 1024 }, embeds.shape);
        output.WriteLine($"text encoder: {clock.Elapsed.TotalSeconds:F1} s"); clock.Restart();

        using var unet = new UNet2DConditionModel(KnownModelConfigs.UNet(KnownModel.Sd21_768V));
        unet.eval();
        using var scheduler = SchedulerRegistry.Create("DDIM", new SchedulerConfig { PredictionType = "v_prediction" });
        scheduler.SetTimesteps(20);
        var latents = torch.randn(1, 4, 64, 64);                                          // [1, 4, 64, 64] = 512²
        double t = scheduler.TimestepValues[0];
        var unetOutput = unet.forward(torch.cat(new[] { latents, latents }), torch.tensor(t), embeds);  // [2, 4, 64, 64]
        Assert.Equal(new long[] { 2, 4, 64, 64 }, unetOutput.shape);
        var chunks = unetOutput.chunk(2);
        Tensor noisePred = chunks[0].ScalarSafe() + 7.5 * (chunks[1].ScalarSafe() - chunks[0]);
        latents = scheduler.Step(noisePred, t, latents);
        output.WriteLine($"UNet step: {clock.Elapsed.TotalSeconds:F1} s"); clock.Restart();

        using var vae = new AutoencoderKL(KnownModelConfigs.Vae(KnownModel.Sd21_768V));
        vae.eval();
        var image = vae.Decode(latents.ScalarSafe() / vae.ScalingFactor);                  // [1, 3, 512, 512]
        Assert.Equal(new long[] { 1, 3, 512, 512 }, image.shape);
        output.WriteLine($"VAE decode: {clock.Elapsed.TotalSeconds:F1} s");

        foreach (var (name, tensor) in new[] { ("embeds", embeds), ("unet", unetOutput), ("latents", latents), ("image", image) })
            Assert.True(tensor.isfinite().all().item<bool>(), $"{name} has non-finite values");
    }
}
