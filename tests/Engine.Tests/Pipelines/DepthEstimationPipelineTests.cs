using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Models.Dpt;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>Depth-to-image with no depth map against diffusers' StableDiffusionDepth2ImgPipeline (depth2img_estimated).</summary>
public class DepthEstimationPipelineTests(DepthModelWithEstimator models, ITestOutputHelper output) : IClassFixture<DepthModelWithEstimator>
{
    private static GenerationRequest RequestFor(GoldenCase golden)
    {
        var root = golden.Json.RootElement;
        var call = root.GetProperty("call");
        return new GenerationRequest
        {
            Prompt = call.GetProperty("prompt").GetString()!,
            NegativePrompt = call.GetProperty("negative_prompt").GetString() ?? "",
            Steps = call.GetProperty("num_inference_steps").GetInt32(),
            GuidanceScale = call.GetProperty("guidance_scale").GetDouble(),
            Seed = root.GetProperty("seed").GetInt64(),
            Input = new DepthToImageInput
            {
                Image = SDImage.Load(Path.Combine(golden.Folder, "input_image.png")).ToTensor(),
                Strength = call.GetProperty("strength").GetDouble(),
            },
        };
    }

    private SDImage RunAndCompare(StableDiffusionModel model, string what, string? scheduler = null)
    {
        using var golden = Golden.Case("depth2img_estimated");
        var compared = new List<string>();
        var observer = new PipelineObserver
        {
            Inspect = (name, actual) =>
            {
                if (name is not ("predicted_depth" or "depth_map_processed")) return;
                var diff = golden.AssertClose(name, actual);
                output.WriteLine($"{what} {name}: max abs diff {diff:G3} (tolerance {golden.Tolerance(name):G3})");
                compared.Add(name);
            },
        };
        using var result = StableDiffusionPipeline.Generate(model, RequestFor(golden) with { Scheduler = scheduler }, observer);
        Assert.Equal(new[] { "predicted_depth", "depth_map_processed" }, compared);
        var input = Assert.IsType<DepthToImageInput>(result.Input);
        Assert.Equal("DPT-Hybrid", input.DepthEstimator);
        Assert.Equal(model.GetDepthEstimator().Hash, input.DepthEstimatorHash);
        var image = Assert.Single(SDImage.FromTensorBatch(result.Images));
        if (scheduler is not null) return image;
        int levels = ModelSources.ModelSourceTestSupport.MaxLevelDifference(SDImage.Load(Path.Combine(golden.Folder, "expected.png")), image);
        output.WriteLine($"{what}: final image max difference {levels} level(s)");
        Assert.True(levels <= 2, $"{what}: image differs from expected.png by {levels} levels");
        return image;
    }

    [Fact]
    public void AFolderWithItsEstimatorMatchesDiffusersWithoutADepthMap()
    {
        Assert.True(models.FolderModel.HasDepthEstimator);
        RunAndCompare(models.FolderModel, "folder");
    }

    [Fact]
    public void TheSingleFileGivesTheFoldersImage()
    {
        // As the other single-file cases: the call's scheduler class on both (a single file plans its scheduler config).
        Assert.Equal(models.SingleFile, models.SingleFileModel.DepthEstimatorPath);
        using var golden = Golden.Case("depth2img_estimated");
        var scheduler = ModelSources.ModelSourceTestSupport.SchedulerClass(golden);
        var fromFile = RunAndCompare(models.SingleFileModel, "single file", scheduler);
        var fromFolder = RunAndCompare(models.FolderModel, "folder", scheduler);
        int levels = ModelSources.ModelSourceTestSupport.MaxLevelDifference(fromFolder, fromFile);
        output.WriteLine($"single file vs folder ({scheduler}): {levels} level(s)");
        Assert.True(levels <= 1, $"the single file's image differs from the folder's by {levels} levels");
    }

    [Fact]
    public void TheRecordSaysTheDepthWasEstimatedAndAGivenMapStillWins()
    {
        using var golden = Golden.Case("depth2img_estimated");
        var request = RequestFor(golden);
        var estimated = Assert.Single(ImageGeneration.Generate(models.FolderModel, request));
        Assert.Equal("estimated (DPT-Hybrid)", estimated.Record.Depth);
        Assert.Equal(models.FolderModel.GetDepthEstimator().Hash, estimated.Record.DepthEstimatorHash);
        Assert.Matches("^[0-9a-f]{64}$", estimated.Record.DepthEstimatorHash!);

        using var depthMap = torch.linspace(0, 1, 64 * 96).reshape(1, 64, 96);
        var fresh = RequestFor(golden);
        var input = Assert.IsType<DepthToImageInput>(fresh.Input) with { DepthMap = depthMap };
        var logs = new List<string>();
        var given = Assert.Single(ImageGeneration.Generate(models.FolderModel, fresh with { Input = input }, new PipelineObserver { Log = logs.Add }));
        Assert.Equal("given", given.Record.Depth);
        Assert.Null(given.Record.DepthEstimatorHash);
        Assert.DoesNotContain(logs, l => l.Contains("estimated", StringComparison.Ordinal));
        Assert.NotEqual(0, ModelSources.ModelSourceTestSupport.MaxLevelDifference(estimated, given));
    }

    [Fact]
    public void GetSDModelSaysWhetherADepthModelHasItsEstimator()
    {
        Assert.True(ModelCatalog.Describe(models.Folder).HasDepthEstimator);
        Assert.True(ModelCatalog.Describe(models.SingleFile).HasDepthEstimator);
        Assert.False(ModelCatalog.Describe(Golden.Path("depth2img", "model")).HasDepthEstimator);
        Assert.False(ModelCatalog.Describe(Golden.Path("depth2img", "single_file.safetensors")).HasDepthEstimator);
        Assert.Null(ModelCatalog.Describe(Golden.Path("img2img", "model")).HasDepthEstimator);
    }

    [Fact]
    public void TheStoreGivesTheCachedDepthModelsEstimatorAndADptFolderAlone()
    {
        var folder = new ModelSource(ModelSourceKind.DiffusersFolder, models.Folder, models.Folder);
        var dpt = Path.Combine(models.Root, "dpt");
        ModelSources.ModelSourceTestSupport.CopyDirectory(Path.Combine(models.Folder, "depth_estimator"), dpt);
        File.Copy(Path.Combine(models.Folder, "feature_extractor", "preprocessor_config.json"), Path.Combine(dpt, "preprocessor_config.json"));
        var alone = new ModelSource(ModelSourceKind.DiffusersFolder, dpt, dpt);
        try
        {
            Assert.False(DepthEstimatorStore.IsEstimatorFolder(folder));
            Assert.True(DepthEstimatorStore.IsEstimatorFolder(alone));
            DepthEstimator fromModel;
            using (var lease = DepthEstimatorStore.Acquire(folder, ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None))
            {
                fromModel = lease.Estimator;
                Assert.Equal(models.Folder, lease.ModelPath);
            }
            using (var again = DepthEstimatorStore.Acquire(folder, ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None))
                Assert.Same(fromModel, again.Estimator); // kept with the cached model
            Assert.Contains(EngineCache.Shared.List(), e => e.Model == models.Folder);

            // The single file's depth_model.* weights: the folder's estimator exactly.
            var singleFile = new ModelSource(ModelSourceKind.SingleFile, models.SingleFile, models.SingleFile);
            using (var lease = DepthEstimatorStore.Acquire(singleFile, ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None))
            {
                Assert.Equal(models.SingleFile, lease.Estimator.Source);
                var image = SDImage.Load(Golden.Path("depth_estimator", "input2.png"));
                using var fromFile = lease.Estimator.Predict(image);
                using var fromFolder = fromModel.Predict(image);
                Assert.Equal(0.0, (fromFile - fromFolder).abs().max().item<float>());
            }

            using (var lease = DepthEstimatorStore.Acquire(alone, ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None))
            {
                Assert.Equal(dpt, lease.ModelPath);
                using var golden = Golden.Case("depth_estimator");
                using var depth = lease.Estimator.Predict(SDImage.Load(Golden.Path("depth_estimator", "input1.png")));
                golden.AssertClose("predicted_depth1", depth);
            }
            Assert.Contains(EngineCache.Shared.List(), e => e.Model == dpt && e.Kind == "depth estimator (DPT-Hybrid)");

            // Copies, so that the engine cache entries this test makes (and clears) are its own.
            var noEstimator = Path.Combine(models.Root, "depth-without-estimator");
            ModelSources.ModelSourceTestSupport.CopyDirectory(Golden.Path("depth2img", "model"), noEstimator);
            var error = Assert.Throws<InvalidOperationException>(() => DepthEstimatorStore.Acquire(
                new ModelSource(ModelSourceKind.DiffusersFolder, noEstimator, noEstimator), ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None));
            Assert.Contains("no depth estimator", error.Message);
            var textToImage = Path.Combine(models.Root, "text-to-image");
            ModelSources.ModelSourceTestSupport.CopyDirectory(Golden.Path("img2img", "model"), textToImage);
            error = Assert.Throws<InvalidOperationException>(() => DepthEstimatorStore.Acquire(
                new ModelSource(ModelSourceKind.DiffusersFolder, textToImage, textToImage), ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None));
            Assert.Contains("only depth models ship a depth estimator", error.Message);
            var neither = Golden.Path("depth_estimator");
            Assert.Throws<DirectoryNotFoundException>(() => DepthEstimatorStore.Acquire(
                new ModelSource(ModelSourceKind.DiffusersFolder, neither, neither), ComputeTarget.Cpu32, ModelLoadOptions.Default, null, CancellationToken.None));
        }
        finally
        {
            EngineCache.Shared.Clear(e => e.Model.StartsWith(models.Root, StringComparison.Ordinal));
        }
    }
}
