using PSStableDiffusion.Engine.Tests.ModelSources;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Cache;

/// <summary>
/// Load → Clear-SDEngine gives back every tensor: after each cycle the live-tensor count is where it started and no
/// mapped view of a weights file is left. (Issue 12 saw ~2,590 "leaked" tensors per cycle in TorchSharp's TotalCount;
/// they were wrappers emptied by <c>new Parameter</c>, see <see cref="TensorAccounting"/>.)
/// </summary>
[Collection(TensorCountingCollection.Name)]
public sealed class EngineLifetimeTests(ITestOutputHelper output)
{
    public static TheoryData<string> Sources => new() { "folder", "single file", "ckpt" };

    [Theory]
    [MemberData(nameof(Sources))]
    public void LoadThenClear_LeavesNoLiveTensorBehind(string sourceKind)
    {
        using var temp = new TempFolder();
        var (model, options) = Source(sourceKind, temp);

        Cycle(model, options); // first use may set up process-wide state once (thread pools, tokenizer files)
        var baseline = Settled();
        // Other test classes keep their own models loaded (class fixtures) with mapped views of their files, so the
        // views are counted against this baseline too, not against zero.
        var viewsBaseline = MappedWeights.LiveViews;
        var loaded = new List<long>();
        for (int i = 0; i < 2; i++) loaded.Add(Cycle(model, options));
        var after = Settled();

        output.WriteLine($"{sourceKind}: live tensors baseline {baseline}, while loaded {string.Join(", ", loaded)}, after 2 cycles {after}; " +
            $"TorchSharp TotalCount {TorchSharp.torch.Tensor.TotalCount} ({TensorAccounting.EmptiedWrappers} emptied wrappers)");
        Assert.All(loaded, count => Assert.True(count > baseline + 100, "the model's weights were not counted while loaded"));
        Assert.Equal(baseline, after);
        Assert.Equal(viewsBaseline, MappedWeights.LiveViews);
    }

    /// <summary>Loads through the engine cache, notes the live count, clears; returns the count while loaded.</summary>
    private static long Cycle(string model, ModelLoadOptions options)
    {
        long whileLoaded;
        using (ModelStore.Acquire(model, ComputeTarget.Cpu32, options, null, default)) whileLoaded = Settled();
        Assert.Single(EngineCache.Shared.Clear(e => e.Model == model));
        return whileLoaded;
    }

    private static long Settled()
    {
        // Finalisers uncount tensors nobody disposed; run them so only reachable tensors remain counted.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return TensorAccounting.LiveTensors;
    }

    private static (string Model, ModelLoadOptions Options) Source(string kind, TempFolder temp)
    {
        const string caseName = "txt2img_eps_dpmpp";
        var config = new ModelLoadOptions { ConfigPath = Golden.Path(caseName, "ldm_config.yaml") };
        switch (kind)
        {
            case "folder":
                return (Golden.Path(caseName, "model"), ModelLoadOptions.Default);
            case "single file":
                return (Golden.Path(caseName, "single_file.safetensors"), config);
            default:
                var ckpt = temp.Combine("tiny.ckpt");
                ModelSourceTestSupport.WriteCkpt(Golden.Path(caseName, "single_file.safetensors"), ckpt);
                return (ckpt, config);
        }
    }
}
