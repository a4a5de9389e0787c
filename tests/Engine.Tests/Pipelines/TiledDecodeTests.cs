using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.ModelSources;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// <see cref="GenerationRequest.DecoderTileSize"/>: the decoder alone runs in tiles (diffusers' enable_vae_tiling),
/// on the golden txt2img_v call (128², a 16² latent) with 12-latent-pixel tiles.
/// </summary>
public class TiledDecodeTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    [Fact]
    public void DecoderTilesLeaveTheDenoisingAloneAndBlendTheDecodedTiles()
    {
        using var golden = Golden.Case("txt2img_v");
        var model = models.Get(golden.Name);
        var request = GoldenRequests.For(golden);
        Tensor? wholeLatents = null, tiledLatents = null;
        var logs = new List<string>();
        PipelineObserver Capture(Action<Tensor> keep) => new()
        {
            Inspect = (name, t) => { if (name == "vae_decode_input") keep(t.clone().DetachFromDisposeScope()); },
            Log = logs.Add,
        };

        using var whole = StableDiffusionPipeline.Generate(model, request, Capture(t => wholeLatents = t));
        using var tiled = StableDiffusionPipeline.Generate(model, request with { DecoderTileSize = 12, TileOverlap = 4 }, Capture(t => tiledLatents = t));

        // Tiles of 12 with overlap 4 over 16 latent pixels: starts 0 and 4 per axis.
        Assert.Equal((1, 1), (whole.UnetTiles, whole.DecoderTiles));
        Assert.Equal((1, 4), (tiled.UnetTiles, tiled.DecoderTiles));
        int pixels = 12 * model.VaeScaleFactor;
        Assert.Contains(logs, line => line.StartsWith($"Tiled VAE decoder: 4 tiles of {pixels}x{pixels} pixels", StringComparison.Ordinal));
        // The UNet saw the same whole latent: the denoised latents are bit-identical.
        Assert.Equal(0f, (wholeLatents! - tiledLatents!).abs().max().item<float>());

        using var scope = NewDisposeScope();
        // The image is exactly the tiled decode of those latents...
        var expected = TiledInference.Run(tiledLatents!, new TilePlan(12, 4), model.VaeScaleFactor, model.Vae.Decode)
            .ScalarSafe().Clamp(-1, 1).Tensor;
        var actual = tiled.Images.ScalarSafe().Clamp(-1, 1).Tensor;
        Assert.Equal(0f, (expected - actual).abs().max().item<float>());
        // ...and close to the whole decode: tiles only differ in their GroupNorm statistics and attention context.
        // This random-weight tiny VAE (GroupNorm groups of one channel, 96-pixel tiles of a 128-pixel image) exaggerates
        // that: measured mean |diff| 0.033, max 0.24 on [-1, 1]. Bounds 0.05 and 0.35.
        var difference = (whole.Images - tiled.Images).abs();
        float mean = difference.mean().item<float>(), max = difference.max().item<float>();
        output.WriteLine($"tiled vs whole decode: mean |diff| {mean:G3}, max {max:G3}");
        Assert.True(mean <= 0.05f, $"mean |diff| {mean}");
        Assert.True(max <= 0.35f, $"max |diff| {max}");
        wholeLatents!.Dispose();
        tiledLatents!.Dispose();
    }

    [Fact]
    public void ALatentThatFitsOneTileIsDecodedWholeAndTheChoiceIsRecorded()
    {
        using var golden = Golden.Case("txt2img_v");
        var model = models.Get(golden.Name);
        var request = GoldenRequests.For(golden) with { Steps = 1, DecoderTileSize = StableDiffusionPipeline.DefaultDecoderTileSize };

        var logs = new List<string>();
        var images = ImageGeneration.Generate(model, request, new PipelineObserver { Log = logs.Add });

        Assert.DoesNotContain(logs, line => line.StartsWith("Tiled VAE decoder", StringComparison.Ordinal)); // 16 latent pixels ≤ 64
        Assert.Equal(StableDiffusionPipeline.DefaultDecoderTileSize, Assert.Single(images).Record.DecoderTileSize);
        Assert.Equal(64, GenerationRecord.FromJson(images[0].Record.ToJson()).DecoderTileSize);
    }

    [Theory]
    [InlineData(4, null, "DecoderTileSize")]
    [InlineData(8, 8, "TileOverlap")]
    public void RefusesATileSizeOrOverlapItCannotUseNamingIt(int tile, int? overlap, string parameter)
    {
        using var golden = Golden.Case("txt2img_v");
        var model = models.Get(golden.Name);
        var request = GoldenRequests.For(golden) with { Steps = 1, DecoderTileSize = tile, TileOverlap = overlap };

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => StableDiffusionPipeline.Generate(model, request).Dispose());
        Assert.Equal(parameter, error.ParamName);
        Assert.Contains(parameter, error.Message);
    }
}
