using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static PSStableDiffusion.Engine.Tests.ModelSources.ModelSourceTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>NaN or infinite values stop a call with NonFiniteOutputException (stage, step), never a black image.</summary>
public sealed class NonFiniteOutputTests
{
    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void TheLoopStopsAtTheStepWhoseModelOutputIsNotFinite(double bad)
    {
        using var scope = torch.NewDisposeScope();
        using var scheduler = SchedulerRegistry.Create("EulerDiscrete", new SchedulerConfig());
        scheduler.SetTimesteps(5);
        using var noise = new GeneratorNoiseSource(1);
        var latents = torch.randn(new long[] { 1, 4, 8, 8 }, generator: new torch.Generator(2)); // [1, 4, 8, 8]
        int calls = 0;
        var error = Assert.Throws<NonFiniteOutputException>(() => DenoisingLoop.Run(scheduler, scheduler.TimestepValues, latents, noise,
            PipelineObserver.None, (sample, _, _) =>
            {
                Tensor output = 0.1 * sample.ScalarSafe();
                return ++calls == 3 ? output.index_put_(torch.tensor(bad), 0, 1, 2, 3) : output;
            }));
        Assert.Equal("UNet", error.Stage);
        Assert.Equal(3, error.Step);
        Assert.Contains("at step 3 of 5", error.Message);
        Assert.Contains("-Precision float32", error.Message);
    }

    [Theory]
    [InlineData("unet", "conv_in.bias", "UNet", 1)]
    [InlineData("vae", "decoder.conv_out.bias", "VAE decoder", null)]
    public void ANaNWeightStopsTheCallAtItsStage(string component, string weight, string stage, int? step)
    {
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        using var model = DiffusersFolderLoader.Load(golden.ModelFolder, ComputeTarget.Cpu32);
        torch.nn.Module module = component == "unet" ? model.Unet : model.Vae;
        using (torch.no_grad())
            module.named_parameters().Single(p => p.name == weight).parameter[0].ScalarSafe().Fill(double.NaN); // a private copy of the mapped page
        var error = Assert.Throws<NonFiniteOutputException>(() => Run(model, golden, null).Dispose());
        Assert.Equal(stage, error.Stage);
        Assert.Equal(step, error.Step);
    }
}
