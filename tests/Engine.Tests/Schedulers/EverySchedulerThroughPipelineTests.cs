using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Schedulers;

/// <summary>Every scheduler name a user can pass runs the whole text-to-image pipeline on the tiny SD 2.1 768-v model.</summary>
public sealed class EverySchedulerThroughPipelineTests : IClassFixture<EverySchedulerThroughPipelineTests.TinyModel>
{
    public sealed class TinyModel : IDisposable
    {
        public StableDiffusionModel Model { get; } =
            DiffusersFolderLoader.Load(Golden.Path("txt2img_v", "model"), ComputeTarget.Cpu32);

        public void Dispose() => Model.Dispose();
    }

    private readonly TinyModel _fixture;

    public EverySchedulerThroughPipelineTests(TinyModel fixture) => _fixture = fixture;

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var preset in SchedulerRegistry.Presets.Where(p => !p.Name.EndsWith("Scheduler", StringComparison.Ordinal)))
            data.Add(preset.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void SchedulerRunsEndToEnd(string name)
    {
        var preset = SchedulerRegistry.Resolve(name);
        int unetCalls = 0;
        var observer = new PipelineObserver
        {
            Inspect = (tensorName, _) => { if (tensorName.EndsWith("_unet_output", StringComparison.Ordinal)) unetCalls++; },
        };
        var request = new GenerationRequest { Prompt = "a lighthouse", Steps = 3, Seed = 7, Width = 64, Height = 64, Scheduler = name };

        using var result = StableDiffusionPipeline.Generate(_fixture.Model, request, observer);

        Assert.Equal(new long[] { 1, 3, 64, 64 }, result.Images.shape);
        Assert.True(result.Images.isfinite().all().item<bool>(), $"{name}: the image has non-finite values");
        Assert.Equal(preset.ClassName, result.SchedulerName);
        // Multi-evaluation schedulers (Heun, KDPM2) call the UNet more than once per step, as in diffusers.
        Assert.Equal(result.Timesteps.Count, unetCalls);
        Assert.InRange(unetCalls, 3, 3 * preset.ModelCallsPerStep + 1);  // PNDM adds one PLMS warm-up call
    }
}
