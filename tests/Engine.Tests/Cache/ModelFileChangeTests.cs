using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.ModelSources;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Cache;

/// <summary>A model file that changes while the model is cached is noticed at the next acquire and reloaded.</summary>
public sealed class ModelFileChangeTests
{
    private const string Weight = "conv_in.bias";

    [Fact]
    public void ReplacedWeights_AreReloadedAtTheNextAcquire_WithAVerboseMessage()
    {
        using var temp = new TempFolder();
        var folder = temp.Combine("model");
        ModelSourceTestSupport.CopyDirectory(Golden.Path("txt2img_eps_dpmpp", "model"), folder);
        var unetFile = Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors");
        var log = new List<string>();
        try
        {
            float[] before;
            StableDiffusionModel first;
            using (var lease = ModelStore.Acquire(folder, ComputeTarget.Cpu32, log.Add, default))
            {
                first = lease.Engine;
                before = UnetWeight(lease.Engine);
            }

            // A re-download: the new file is written beside the old one and moved over it (same size, new content).
            var replacement = temp.Combine("download.tmp");
            WriteWithShiftedWeight(unetFile, replacement, shift: 1f);
            var oldTime = File.GetLastWriteTimeUtc(unetFile);
            File.Move(replacement, unetFile, overwrite: true);
            File.SetLastWriteTimeUtc(unetFile, oldTime.AddSeconds(2)); // coarse file-system clocks could hide the change

            log.Clear();
            using (var lease = ModelStore.Acquire(folder, ComputeTarget.Cpu32, log.Add, default))
            {
                Assert.NotSame(first, lease.Engine);
                var after = UnetWeight(lease.Engine);
                Assert.Equal(before.Select(v => v + 1f), after);
            }
            var reload = Assert.Single(log, l => l.StartsWith("Reloading", StringComparison.Ordinal));
            Assert.Contains(unetFile, reload);

            log.Clear();
            using (ModelStore.Acquire(folder, ComputeTarget.Cpu32, log.Add, default)) { }
            Assert.DoesNotContain(log, l => l.StartsWith("Reloading", StringComparison.Ordinal));
            Assert.Contains(log, l => l.StartsWith("Using the cached", StringComparison.Ordinal));
        }
        finally
        {
            EngineCache.Shared.Clear(e => e.Model == folder);
        }
    }

    [Fact]
    public void RewrittenSingleFile_IsReloaded_AndADeletedOneIsReportedWhenNeeded()
    {
        using var temp = new TempFolder();
        var checkpoint = temp.Combine("tiny.safetensors");
        File.Copy(Golden.Path("txt2img_eps_dpmpp", "single_file.safetensors"), checkpoint);
        var options = new ModelLoadOptions { ConfigPath = Golden.Path("txt2img_eps_dpmpp", "ldm_config.yaml") };
        var log = new List<string>();
        try
        {
            using (ModelStore.Acquire(checkpoint, ComputeTarget.Cpu32, options, log.Add, default)) { }
            // Rewritten in place (what a copy over the old file does): same path and size, a new time stamp.
            var bytes = File.ReadAllBytes(checkpoint);
            File.WriteAllBytes(checkpoint, bytes);
            File.SetLastWriteTimeUtc(checkpoint, File.GetLastWriteTimeUtc(checkpoint).AddSeconds(2));
            log.Clear();
            using (ModelStore.Acquire(checkpoint, ComputeTarget.Cpu32, options, log.Add, default)) { }
            Assert.Contains(log, l => l.StartsWith("Reloading", StringComparison.Ordinal) && l.Contains(checkpoint));
        }
        finally
        {
            EngineCache.Shared.Clear(e => e.Model == checkpoint);
        }
    }

    private static float[] UnetWeight(StableDiffusionModel model) =>
        model.Unet.named_parameters().Single(p => p.name == Weight).parameter.data<float>().ToArray();

    private static void WriteWithShiftedWeight(string source, string destination, float shift)
    {
        using var file = SafeTensorsFile.Open(source);
        using var scope = torch.NewDisposeScope();
        var tensors = file.Tensors.Keys.Order(StringComparer.Ordinal)
            .Select(name => (name, name == Weight ? (file.Read(name).ScalarSafe() + shift).Tensor : file.Read(name)))
            .ToList();
        SafeTensorsWriter.Write(destination, tensors);
    }
}
