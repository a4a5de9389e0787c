using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.ModelSources;

internal static class ModelSourceTestSupport
{
    /// <summary>The diffusers scheduler class the case's call used (case.json <c>scheduler.class</c>).</summary>
    public static string SchedulerClass(GoldenCase golden) =>
        golden.Json.RootElement.GetProperty("scheduler").GetProperty("class").GetString()!;

    /// <summary>Runs the case's call on <paramref name="model"/> with the scheduler class <paramref name="scheduler"/>
    /// (null: the model's own), from the seed.</summary>
    public static RunOutput Run(StableDiffusionModel model, GoldenCase golden, string? scheduler)
    {
        Tensor? final = null;
        var observer = new PipelineObserver
        {
            Inspect = (name, tensor) =>
            {
                if (name != "final_latents") return;
                final?.Dispose();
                final = tensor.detach().to(ScalarType.Float32).clone();
                final.DetachFromDisposeScope();
            },
        };
        var request = GoldenRequests.For(golden) with { Scheduler = scheduler };
        using var result = StableDiffusionPipeline.Generate(model, request, observer);
        var image = Assert.Single(SDImage.FromTensorBatch(result.Images));
        Assert.NotNull(final);
        return new RunOutput(image, final!, result.Timesteps.ToArray());
    }

    /// <summary>The largest per-channel difference between two images of the same size, in 8-bit levels.</summary>
    public static int MaxLevelDifference(SDImage expected, SDImage actual)
    {
        Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
        return expected.Pixels.Zip(actual.Pixels, (a, b) => Math.Abs(a - b)).Max();
    }

    /// <summary>Same shape, dtype and every value (bitwise for floats without NaN).</summary>
    public static bool SameValues(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public static void CopyDirectory(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(destination, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    /// <summary>Writes every tensor of a safetensors file into a torch zip checkpoint (<c>{'state_dict': ..., 'global_step': n}</c>).</summary>
    public static void WriteCkpt(string safetensorsPath, string ckptPath, long? globalStep = null, ScalarType? dtype = null)
    {
        using var source = PSStableDiffusion.Engine.IO.SafeTensorsFile.Open(safetensorsPath);
        var writer = new Checkpoints.TorchSaveWriter { GlobalStep = globalStep };
        foreach (var key in source.Tensors.Keys.Order(StringComparer.Ordinal))
        {
            using var tensor = source.Read(key);
            using var converted = dtype is { } d && tensor.is_floating_point() ? tensor.to(d) : tensor.alias();
            writer.AddTensor(key, converted);
        }
        writer.Save(ckptPath);
    }
}
