using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Loading;

public sealed class StateDictLoaderTests : IDisposable
{
#pragma warning disable IDE1006 // fields are named after their state-dict keys
    /// <summary>Parameters in a child module and at the top, a persistent and a non-persistent buffer.</summary>
    private sealed class TinyBlock : nn.Module<Tensor, Tensor>
    {
        private readonly Linear proj;
        private readonly LayerNorm norm;
        private readonly Parameter scale;

        public TinyBlock() : base(nameof(TinyBlock))
        {
            proj = nn.Linear(4, 3);
            norm = nn.LayerNorm(3);
            scale = new Parameter(torch.ones(3));
            register_buffer("position_ids", torch.zeros(new long[] { 1, 5 }, ScalarType.Int64));
            register_buffer("scratch", torch.zeros(2), persistent: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input) => norm.forward(proj.forward(input)) * scale;
    }
#pragma warning restore IDE1006

    private readonly TempFolder _temp = new("loader-tests-");

    public void Dispose() => _temp.Dispose();

    private static Dictionary<string, Tensor> RandomWeights(int seed, ScalarType dtype = ScalarType.Float32)
    {
        var generator = new torch.Generator((ulong)seed);
        return new Dictionary<string, Tensor>
        {
            ["proj.weight"] = torch.randn(new long[] { 3, 4 }, generator: generator).to(dtype),
            ["proj.bias"] = torch.randn(new long[] { 3 }, generator: generator).to(dtype),
            ["norm.weight"] = torch.randn(new long[] { 3 }, generator: generator).to(dtype),
            ["norm.bias"] = torch.randn(new long[] { 3 }, generator: generator).to(dtype),
            ["scale"] = torch.randn(new long[] { 3 }, generator: generator).to(dtype),
            ["position_ids"] = ScalarSafeTensor.Arange(5, ScalarType.Int64, CPU).unsqueeze(0),
        };
    }

    private string Write(string name, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        var path = Path.Combine(_temp.Path, name);
        SafeTensorsWriter.Write(path, tensors.Select(kv => (kv.Key, kv.Value)), new Dictionary<string, string> { ["format"] = "pt" });
        return path;
    }

    private static Tensor Parameter(nn.Module module, string name) =>
        module.get_parameter(name) ?? throw new KeyNotFoundException(name);

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void LoadsEveryParameterAndBufferInPlace()
    {
        var weights = RandomWeights(1);
        var path = Write("model.safetensors", weights);
        using var module = new TinyBlock();
        var parameterBefore = Parameter(module, "proj.weight");

        using var file = SafeTensorsFile.Open(path);
        var result = StateDictLoader.Load(module, file);

        Assert.Equal(6, result.LoadedCount);
        Assert.Empty(result.IgnoredKeys);
        var state = module.state_dict();
        foreach (var (key, expected) in weights) Assert.True(Same(expected, state[key]), $"{key} not loaded");
        Assert.Same(parameterBefore, Parameter(module, "proj.weight"));
        Assert.True(Parameter(module, "proj.weight").requires_grad);
        Assert.Equal(ScalarType.Float32, state["proj.weight"].dtype);
    }

    [Fact]
    public void ConvertsHalfPrecisionFilesToTheParameterDtype()
    {
        var weights = RandomWeights(2, ScalarType.Float16);
        var path = Write("half.safetensors", weights);
        using var module = new TinyBlock();
        StateDictLoader.Load(module, new[] { path });
        var loaded = Parameter(module, "proj.weight");
        Assert.Equal(ScalarType.Float32, loaded.dtype);
        Assert.True(Same(weights["proj.weight"].to(ScalarType.Float32), loaded));

        module.to(ScalarType.BFloat16);
        StateDictLoader.Load(module, new[] { path });
        Assert.Equal(ScalarType.BFloat16, Parameter(module, "scale").dtype);
        Assert.True(Same(weights["scale"].to(ScalarType.BFloat16), Parameter(module, "scale")));
    }

    [Fact]
    public void LoadsAShardedCheckpoint()
    {
        var weights = RandomWeights(3);
        var first = Write("part1.safetensors", weights.Where(kv => kv.Key.StartsWith("proj", StringComparison.Ordinal)));
        var second = Write("part2.safetensors", weights.Where(kv => !kv.Key.StartsWith("proj", StringComparison.Ordinal)));
        using var module = new TinyBlock();
        var result = StateDictLoader.Load(module, new[] { first, second });
        Assert.Equal(6, result.LoadedCount);
        Assert.True(Same(weights["norm.bias"], module.state_dict()["norm.bias"]));
    }

    [Fact]
    public void MissingKeyNamesTheKeyAndTheFile()
    {
        var weights = RandomWeights(4);
        weights.Remove("norm.bias");
        var path = Write("missing.safetensors", weights);
        using var module = new TinyBlock();
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { path }));
        Assert.Contains("missing key 'norm.bias'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Single(error.Problems);
    }

    [Fact]
    public void UnexpectedKeyNamesTheKeyAndTheFile()
    {
        var weights = RandomWeights(5);
        weights["text_projection"] = torch.zeros(2, 2);
        var path = Write("unexpected.safetensors", weights);
        using var module = new TinyBlock();
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { path }));
        Assert.Contains("unexpected key 'text_projection'", error.Message);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void ShapeMismatchNamesKeyFileAndBothShapes()
    {
        var weights = RandomWeights(6);
        weights["proj.weight"] = torch.zeros(4, 3);
        var path = Write("shape.safetensors", weights);
        using var module = new TinyBlock();
        var before = Parameter(module, "proj.bias").clone();
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { path }));
        Assert.Contains("'proj.weight'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.Contains("file has [4, 3]", error.Message);
        Assert.Contains("module expects [3, 4]", error.Message);
        // Nothing was copied: the module is untouched by a failed load.
        Assert.True(Same(before, Parameter(module, "proj.bias")));
    }

    [Fact]
    public void DuplicateKeysAcrossFilesAreRefused()
    {
        var weights = RandomWeights(7);
        var first = Write("a.safetensors", weights);
        var second = Write("b.safetensors", weights.Where(kv => kv.Key == "scale"));
        using var module = new TinyBlock();
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { first, second }));
        Assert.Contains("duplicate key 'scale'", error.Message);
        Assert.Contains(first, error.Message);
        Assert.Contains(second, error.Message);
    }

    [Fact]
    public void KeyMapRenamesAndIgnoresKeys()
    {
        var weights = RandomWeights(8);
        var renamed = weights.ToDictionary(kv => "model." + kv.Key, kv => kv.Value);
        renamed["model.logit_scale"] = torch.ones(1);
        var path = Write("prefixed.safetensors", renamed);
        using var module = new TinyBlock();

        var result = StateDictLoader.Load(module, new[] { path },
            key => key == "model.logit_scale" ? null : key["model.".Length..]);

        Assert.Equal(6, result.LoadedCount);
        Assert.Equal(new[] { "model.logit_scale" }, result.IgnoredKeys);
        Assert.True(Same(weights["proj.weight"], Parameter(module, "proj.weight")));

        // A mapped name the module lacks is reported with both names.
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { path }, key => key));
        Assert.Contains("unexpected key 'model.logit_scale'", error.Message);
        error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Load(module, new[] { path }, key => key + ".x"));
        Assert.Contains("'model.scale' (as 'model.scale.x')", error.Message);
    }

    [Fact]
    public void LoadingHoldsNoManagedCopyOfTheWeights()
    {
        using var module = nn.Linear(1024, 1024); // 4 MB of float32 weights
        var path = Write("big.safetensors", new Dictionary<string, Tensor>
        {
            ["weight"] = torch.randn(1024, 1024).to(ScalarType.BFloat16),
            ["bias"] = torch.randn(1024).to(ScalarType.BFloat16),
        });
        using var file = SafeTensorsFile.Open(path);
        StateDictLoader.Load(module, file); // warm-up: JIT and first-use costs

        long before = GC.GetAllocatedBytesForCurrentThread();
        StateDictLoader.Load(module, file);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 256 * 1024, $"loading allocated {allocated} managed bytes for 4 MB of weights");
    }
}
