using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static PSStableDiffusion.Engine.Tests.SingleFile.SingleFileTestSupport;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.SingleFile;

/// <summary>
/// The key map against the golden fixtures, whose <c>single_file.safetensors</c> diffusers' own conversion scripts wrote
/// from the <c>model/</c> weights: both directions, every key, bitwise.
/// </summary>
public class LdmKeyMapGoldenTests
{
    private static readonly SingleFileComponent[] Components = { SingleFileComponent.UNet, SingleFileComponent.Vae, SingleFileComponent.TextEncoder };

    private readonly ITestOutputHelper _output;

    public LdmKeyMapGoldenTests(ITestOutputHelper output) => _output = output;

    public static IEnumerable<object[]> Cases => PipelineCases.Select(c => new object[] { c });

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryDiffusersTensorComesBitwiseFromItsCheckpointKeyAndBack(string caseName)
    {
        var plan = SingleFilePlanner.Plan(SingleFilePath(caseName), new SingleFileOptions { ConfigPath = LdmConfig(caseName) });
        using var single = SafeTensorsFile.Open(SingleFilePath(caseName));
        var files = Components.ToDictionary(c => c, c => SafeTensorsFile.Open(ComponentFile(caseName, c)));
        try
        {
            int mapped = AssertBothWays(plan.KeyMap, single, files);
            _output.WriteLine($"{caseName}: {mapped} diffusers tensors bitwise equal; {plan.IgnoredKeys.Count} checkpoint keys ignored");

            // What is ignored is exactly what the fixture says it added to mirror a real checkpoint (+ the upscaler's
            // low_scale_model buffers, whether or not case.json lists them).
            using var golden = Golden.Case(caseName);
            var listed = golden.Json.RootElement.GetProperty("single_file_info").GetProperty("extra_keys").EnumerateObject()
                .Where(p => p.Value.ValueKind == System.Text.Json.JsonValueKind.Array)
                .SelectMany(p => p.Value.EnumerateArray().Select(k => k.GetString()!)).ToHashSet();
            var expectedIgnored = listed.Concat(single.Tensors.Keys.Where(k => k.StartsWith("low_scale_model.", StringComparison.Ordinal)))
                .Distinct().Order(StringComparer.Ordinal);
            Assert.Equal(expectedIgnored, plan.IgnoredKeys);
            Assert.Equal(caseName == "upscale_x4", plan.IgnoredKeys.Any(k => k.StartsWith("low_scale_model.", StringComparison.Ordinal)));
            Assert.Equal(golden.Json.RootElement.GetProperty("single_file_info").GetProperty("num_keys").GetInt32(), single.Tensors.Count);
        }
        finally
        {
            foreach (var file in files.Values) file.Dispose();
        }
    }

    [Fact]
    public void TextEncoderFixtureMapsBothWays()
    {
        var path = Golden.Path("text_encoder", "single_file.safetensors");
        using var single = SafeTensorsFile.Open(path);
        var architecture = SingleFileDetector.Detect(single.Tensors, path);
        Assert.Null(architecture.UNet);
        Assert.Null(architecture.Vae);
        Assert.Equal(new LdmTextArchitecture(8, 23, 24, 32, 49408, 77), architecture.Text);
        using var diffusers = SafeTensorsFile.Open(ComponentFile("text_encoder", SingleFileComponent.TextEncoder));
        var map = new LdmKeyMap(architecture);
        int mapped = AssertBothWays(map, single, new Dictionary<SingleFileComponent, SafeTensorsFile> { [SingleFileComponent.TextEncoder] = diffusers });
        Assert.Equal(23 * 16 + 4, mapped); // 16 tensors per layer (q/k/v split) + embeddings and final norm
        Assert.Equal(14, single.Tensors.Keys.Count(map.IsIgnored)); // resblocks.23 (12), text_projection, logit_scale
    }

    private static bool BitwiseEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    /// <summary>
    /// Forward: every checkpoint key is mapped or ignored, and every diffusers key is produced exactly once, bitwise.
    /// Backward: every mapped checkpoint tensor is rebuilt bitwise from the diffusers tensors.
    /// </summary>
    private static int AssertBothWays(LdmKeyMap map, SafeTensorsFile single, IReadOnlyDictionary<SingleFileComponent, SafeTensorsFile> diffusers)
    {
        int count = 0;
        foreach (var (component, file) in diffusers)
        {
            var moduleKeys = map.ModuleKeys(component);
            Assert.Equal(file.Tensors.Keys.Order(StringComparer.Ordinal), moduleKeys.Keys.Order(StringComparer.Ordinal));
            foreach (var key in file.Tensors.Keys)
            {
                using var scope = torch.NewDisposeScope();
                var mapping = map.Inverse(component, key);
                var mine = mapping.ToModule(single.Read(mapping.SourceKey));
                var expected = file.Read(key);
                Assert.Equal(expected.shape, mine.shape);
                Assert.True(BitwiseEqual(expected, mine), $"{component} '{key}' from '{mapping.SourceKey}' differs");
                count++;
            }
        }

        foreach (var sourceKey in single.Tensors.Keys)
        {
            var mappings = map.Resolve(sourceKey);
            if (mappings.Count == 0)
            {
                Assert.True(map.IsIgnored(sourceKey), sourceKey);
                continue;
            }
            Assert.All(mappings, m => Assert.Equal(sourceKey, m.SourceKey));
            using var scope = torch.NewDisposeScope();
            var rebuilt = map.ToCheckpointTensor(sourceKey, (component, moduleKey) => diffusers[component].Read(moduleKey));
            var original = single.Read(sourceKey);
            Assert.Equal(original.shape, rebuilt.shape);
            Assert.True(BitwiseEqual(original, rebuilt), $"'{sourceKey}' is not rebuilt bitwise from the diffusers tensors");
        }
        return count;
    }
}
