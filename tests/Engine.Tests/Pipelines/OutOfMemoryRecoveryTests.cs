using System.Runtime.InteropServices;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Cache;
using PSStableDiffusion.Engine.Tests.Lora;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// A CUDA out-of-memory error in the middle of a call (issue 17, "Engine behaviour on CUDA"): it is told apart as one
/// (the cmdlets report it as InsufficientMemory), and the cached model goes on as before. No GPU is here, so the error
/// is raised as TorchSharp raises a libtorch failure (an <see cref="ExternalException"/> carrying libtorch's message)
/// from inside the denoising loop, with a LoRA merged, after the call has allocated its tensors.
/// </summary>
[Collection(TensorCountingCollection.Name)]
public sealed class OutOfMemoryRecoveryTests(GoldenModels models) : IClassFixture<GoldenModels>
{
    // c10's CUDACachingAllocator's wording (PyTorch 2.x), as TorchSharp passes it on.
    private const string CudaOutOfMemory =
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.12 GiB " +
        "is free. Including non-PyTorch memory, this process has 78.06 GiB memory in use.";

    [Fact]
    public void ACudaOutOfMemoryMidCall_IsOutOfMemory_AndTheModelThenGivesTheSameImageWithNothingLeftBehind()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var snapshot = LoraFixtures.Snapshot(model);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var request = GoldenRequests.For(golden) with { Steps = 3 };
        var withLora = request with { Loras = LoraFixtures.Requests("mult08") };
        torch.Tensor Images(GenerationRequest call) // [N, 3, H, W]
        {
            using var result = StableDiffusionPipeline.Generate(model, call);
            return result.Images.clone();
        }
        using (Images(withLora)) { } // first use may set up process-wide state once (the LoRA file's reader)
        using var before = Images(request);
        long liveBefore = Settled();

        var failing = new PipelineObserver
        {
            Progress = step => { if (step.Step == 2) throw new ExternalException(CudaOutOfMemory); },
        };
        var error = Record.Exception(() => StableDiffusionPipeline.Generate(model, withLora, failing));

        Assert.True(error is not null && TorchErrors.IsOutOfMemory(error), error?.ToString());
        Assert.Equal(liveBefore, Settled());          // the failed call's tensors are all freed
        LoraFixtures.AssertUnchanged(model, snapshot); // the LoRA's merge is undone
        using var after = Images(request);
        Assert.True(LoraFixtures.Equal(before, after), "the same call after the failure gives a different image");
    }

    private static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return TensorAccounting.LiveTensors;
    }
}
