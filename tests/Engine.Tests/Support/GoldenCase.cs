using System.Text.Json;
using PSStableDiffusion.Engine.IO;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>One pipeline case folder: case.json, io.safetensors and the model.</summary>
public sealed class GoldenCase : IDisposable
{
    private readonly Lazy<SafeTensorsFile> _io;

    public GoldenCase(string name)
    {
        Name = name;
        Folder = Golden.Path(name);
        Json = Golden.ParseJson(File.ReadAllText(System.IO.Path.Combine(Folder, "case.json")));
        _io = new Lazy<SafeTensorsFile>(() => SafeTensorsFile.Open(System.IO.Path.Combine(Folder, "io.safetensors")));
    }

    public string Name { get; }
    public string Folder { get; }
    public string ModelFolder => System.IO.Path.Combine(Folder, "model");
    public JsonDocument Json { get; }
    public SafeTensorsFile Io => _io.Value;

    public Tensor Tensor(string name) => Io.Read(name);

    public bool Has(string name) => Io.Tensors.ContainsKey(name);

    /// <summary>The recommended max-abs tolerance for a float32 implementation (case.json tolerances).</summary>
    public double Tolerance(string name) =>
        Json.RootElement.GetProperty("tolerances").TryGetProperty(name, out var t) ? t.GetProperty("max_abs").GetDouble() : 0.0;

    public double AssertClose(string name, Tensor actual) => Golden.AssertClose(Tensor(name), actual, Tolerance(name), $"{Name}/{name}");

    public void Dispose()
    {
        if (_io.IsValueCreated) _io.Value.Dispose();
        Json.Dispose();
    }
}
