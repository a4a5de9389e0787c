using System.Collections;
using System.Reflection;
using System.Text;
using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.SingleFile;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.SingleFile;

internal static class SingleFileTestSupport
{
    public static string[] PipelineCases => GoldenCases.Pipeline;

    public static string SingleFilePath(string caseName) => Golden.Path(caseName, "single_file.safetensors");

    public static string LdmConfig(string caseName) => Golden.Path(caseName, "ldm_config.yaml");

    /// <summary>The diffusers file holding a component's weights in a golden case folder.</summary>
    public static string ComponentFile(string caseName, SingleFileComponent component) => component switch
    {
        SingleFileComponent.UNet => Golden.Path(caseName, "model", "unet", "diffusion_pytorch_model.safetensors"),
        SingleFileComponent.Vae => Golden.Path(caseName, "model", "vae", "diffusion_pytorch_model.safetensors"),
        SingleFileComponent.TextEncoder => caseName == "text_encoder"
            ? Golden.Path("text_encoder", "text_encoder", "model.safetensors")
            : Golden.Path(caseName, "model", "text_encoder", "model.safetensors"),
        _ => throw new ArgumentOutOfRangeException(nameof(component)),
    };

    public static string ComponentConfig(string caseName, string folder) => Golden.Path(caseName, "model", folder,
        folder.Contains("scheduler", StringComparison.Ordinal) ? "scheduler_config.json" : "config.json");

    /// <summary>
    /// Asserts two parsed config objects hold the same value in every public property. Per-block settings given as one
    /// value are broadcast before comparing ([8] equals [8, 8, 8]), as the models read them.
    /// </summary>
    public static void AssertSameConfig<T>(T expected, T actual, string what, params string[] skip)
    {
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (skip.Contains(property.Name) || property.GetIndexParameters().Length > 0) continue;
            var e = Normalize(property.GetValue(expected));
            var a = Normalize(property.GetValue(actual));
            if (e is IList el && a is IList al)
            {
                if (el.Count == 1 && al.Count > 1) el = Enumerable.Repeat(el[0], al.Count).ToList();
                if (al.Count == 1 && el.Count > 1) al = Enumerable.Repeat(al[0], el.Count).ToList();
                Assert.True(el.Cast<object>().SequenceEqual(al.Cast<object>()),
                    $"{what}: {property.Name} expected [{string.Join(", ", el.Cast<object>())}], got [{string.Join(", ", al.Cast<object>())}]");
            }
            else Assert.True(Equals(e, a), $"{what}: {property.Name} expected {e ?? "null"}, got {a ?? "null"}");
        }
    }

    /// <summary>
    /// only_cross_attention compared where it has an effect: a level without attention has no weights to show it
    /// (diffusers' x4 config says true for its attention-free first level).
    /// </summary>
    public static void AssertSameOnlyCrossAttention(PSStableDiffusion.Engine.Models.Unet.UNet2DConditionConfig expected,
        PSStableDiffusion.Engine.Models.Unet.UNet2DConditionConfig actual, string what)
    {
        static bool At(bool[] perBlock, int level) => perBlock.Length == 1 ? perBlock[0] : perBlock[level];
        for (int level = 0; level < expected.BlockOutChannels.Length; level++)
            if (expected.DownBlockTypes[level] == "CrossAttnDownBlock2D")
                Assert.True(At(expected.OnlyCrossAttention, level) == At(actual.OnlyCrossAttention, level),
                    $"{what}: only_cross_attention differs at level {level}");
    }

    private static object? Normalize(object? value) => value switch
    {
        JsonElement element => element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : element.GetRawText(),
        string s => s,
        IEnumerable list => list.Cast<object>().ToList(),
        _ => value,
    };

    /// <summary>Compares JSON objects key by key (numbers by value; the non-standard literals as text).</summary>
    public static void AssertSameJson(JsonElement expected, JsonElement actual, string what, IEnumerable<string>? keys = null)
    {
        foreach (var key in keys ?? expected.EnumerateObject().Select(p => p.Name))
        {
            Assert.True(expected.TryGetProperty(key, out var e), $"{what}: reference has no '{key}'");
            Assert.True(actual.TryGetProperty(key, out var a), $"{what}: missing '{key}'");
            if (e.ValueKind == JsonValueKind.Number && a.ValueKind == JsonValueKind.Number)
                Assert.True(e.GetDouble() == a.GetDouble(), $"{what}: {key} expected {e.GetRawText()}, got {a.GetRawText()}");
            else Assert.True(e.GetRawText() == a.GetRawText(), $"{what}: {key} expected {e.GetRawText()}, got {a.GetRawText()}");
        }
    }

    /// <summary>
    /// Writes a safetensors file with the given header and no data: the data section is a sparse hole of the right
    /// length, so multi-gigabyte checkpoints cost a few kilobytes of disk. Only headers may be read from it.
    /// </summary>
    public static void WriteSparseCheckpoint(string path, IEnumerable<(string Name, long[] Shape)> tensors)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape) in tensors.OrderBy(t => t.Name, StringComparer.Ordinal))
        {
            long bytes = 4 * shape.Aggregate(1L, (a, b) => a * b);
            header[name] = new { dtype = "F32", shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        header["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" };
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.Write(BitConverter.GetBytes((long)json.Length));
        file.Write(json);
        file.SetLength(8 + json.Length + offset);
    }

    public static IReadOnlyDictionary<string, SafeTensorInfo> Header(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Tensors;
    }
}
