using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>
/// One cached engine serves calls with and without a LoRA at the same time (as <c>ForEach-Object -Parallel</c> does
/// through the shared engine cache): each call's image is the one it gives when run alone.
/// </summary>
public class LoraParallelTests
{
    [Fact]
    public async Task ParallelCallsWithAndWithoutALoraGiveTheirImagesAlone()
    {
        var cache = new EngineCache();
        var folder = Golden.Path("txt2img_eps_dpmpp", "model");
        var key = new EngineKey(folder, ComputeTarget.Cpu32);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var plain = GoldenRequests.For(golden);
        var withLora = plain with { Loras = LoraFixtures.Requests("two_loras") };

        byte[] Run(GenerationRequest request)
        {
            using var lease = cache.Acquire(key, () => DiffusersFolderLoader.Load(folder, ComputeTarget.Cpu32), CancellationToken.None);
            using var result = StableDiffusionPipeline.Generate(lease.Engine, request);
            return Assert.Single(SDImage.FromTensorBatch(result.Images)).Pixels;
        }

        var aloneWith = Run(withLora);
        var alonePlain = Run(plain);
        Assert.NotEqual(alonePlain, aloneWith);

        var calls = Enumerable.Range(0, 6).Select(i => Task.Run(() => (i % 2 == 0, Run(i % 2 == 0 ? withLora : plain)))).ToArray();
        var results = await Task.WhenAll(calls);

        foreach (var (lora, pixels) in results)
            Assert.Equal(lora ? aloneWith : alonePlain, pixels);
        cache.Clear(_ => true);
    }
}
