using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>The golden LoRA fixtures (tests/golden/lora, made by tools/make_lora_cases.py): their files, their key
/// names, and diffusers' images with the LoRAs merged into the weights.</summary>
internal static class LoraFixtures
{
    public static string Path(string file) => Golden.Path("lora", file);

    public static JsonDocument Cases { get; } = Golden.ParseJson(File.ReadAllText(Path("cases.json")));

    public static SafeTensorsFile Io() => SafeTensorsFile.Open(Path("io.safetensors"));

    public static JsonElement Case(string name) => Cases.RootElement.GetProperty("cases").GetProperty(name);

    /// <summary>The case's LoRAs as requests (file, te and unet multipliers).</summary>
    public static IReadOnlyList<LoraRequest> Requests(string name) =>
        Case(name).GetProperty("loras").EnumerateArray()
            .Select(l => new LoraRequest(Path(l.GetProperty("file").GetString()!), l.GetProperty("te").GetDouble(), l.GetProperty("unet").GetDouble()))
            .ToList();

    /// <summary>A copy of every weight of the text encoder and UNet, to show later that they are back.</summary>
    public static Dictionary<string, Tensor> Snapshot(StableDiffusionModel model) =>
        model.TextEncoder.named_parameters().Select(p => ("te." + p.name, p.parameter))
            .Concat(model.Unet.named_parameters().Select(p => ("unet." + p.name, p.parameter)))
            .ToDictionary(p => p.Item1, p => p.Item2.detach().clone());

    /// <summary>Same shape and the same values, bit for bit.</summary>
    public static bool Equal(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && (a == b).all().item<bool>();

    /// <summary>Asserts that every weight equals its snapshot bit for bit; returns how many were compared.</summary>
    public static int AssertUnchanged(StableDiffusionModel model, Dictionary<string, Tensor> snapshot)
    {
        var now = model.TextEncoder.named_parameters().Select(p => ("te." + p.name, p.parameter))
            .Concat(model.Unet.named_parameters().Select(p => ("unet." + p.name, p.parameter))).ToList();
        Assert.Equal(snapshot.Count, now.Count);
        foreach (var (name, parameter) in now)
            Assert.True(Equal(snapshot[name], parameter), $"{name} differs from its value before the call");
        return now.Count;
    }
}
