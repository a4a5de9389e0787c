using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Cache;
using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>
/// What one call with LoRAs leaves behind and tells: no tensor after the call (the merged weights are freed, not kept),
/// a warning when a replayed record's hash is not the file's, and a negative prompt's tag read as text with a warning,
/// as AUTOMATIC1111 reads it. Counts tensors process-wide, so it runs alone.
/// </summary>
[Collection(TensorCountingCollection.Name)]
public sealed class LoraCallTests(GoldenModels models, ITestOutputHelper output) : IClassFixture<GoldenModels>
{
    [Fact]
    public void TheMergedWeightsAreFreedWhenTheCallEnds()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var requests = LoraFixtures.Requests("two_loras");
        using (AppliedLoras.Apply(model, requests)) { } // first use may set up process-wide state once
        var baseline = Settled();
        long during;
        int changed;
        using (var applied = AppliedLoras.Apply(model, requests))
        {
            during = Settled();
            changed = applied.ChangedLayers;
        }
        var after = Settled();

        output.WriteLine($"live tensors: {baseline} before, {during} with {changed} layers merged, {after} after");
        Assert.True(changed > 20, $"only {changed} layers changed");
        Assert.True(during >= baseline + changed, "the merged weights were not counted during the call");
        Assert.Equal(baseline, after);
    }

    [Fact]
    public void AFileWhoseHashIsNotTheRecordedOneIsAppliedWithAWarning()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var request = LoraFixtures.Requests("mult08")[0];
        var warnings = new List<string>();
        string actual;
        using (var applied = AppliedLoras.Apply(model, [request with { RecordedHash = "0123456789ab" }], warn: warnings.Add))
            actual = applied.Applied[0].Hash;

        var warning = Assert.Single(warnings);
        output.WriteLine(warning);
        Assert.Contains("0123456789ab", warning);
        Assert.Contains(actual, warning);

        // The file's own hash, shortened to 10 digits and in capitals as other tools write it: no warning.
        warnings.Clear();
        using (AppliedLoras.Apply(model, [request with { RecordedHash = actual[..10].ToUpperInvariant() }], warn: warnings.Add)) { }
        Assert.Empty(warnings);
    }

    [Fact]
    public void ANegativePromptsTagAppliesNoLoraAndIsWarnedAbout()
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var snapshot = LoraFixtures.Snapshot(model);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var warnings = new List<string>();
        var merged = new List<string>();
        var observer = new PipelineObserver { Warn = warnings.Add, Log = line => { if (line.StartsWith("LoRA ", StringComparison.Ordinal)) merged.Add(line); } };
        var request = GoldenRequests.For(golden) with { NegativePrompt = "blurry <lora:style_kohya:0.8>", Steps = 2 };

        using var result = StableDiffusionPipeline.Generate(model, request, observer);

        Assert.Empty(result.Loras);
        Assert.Empty(merged);
        Assert.Contains(warnings, w => w.Contains("<lora:style_kohya:0.8>", StringComparison.Ordinal));
        LoraFixtures.AssertUnchanged(model, snapshot);
    }

    private static long Settled()
    {
        // Finalisers uncount tensors nobody disposed; run them so only reachable tensors remain counted.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return TensorAccounting.LiveTensors;
    }
}
