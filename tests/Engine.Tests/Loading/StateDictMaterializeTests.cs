using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using TorchSharp.Modules;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Loading;

/// <summary>
/// <see cref="StateDictLoader.Materialize"/>: a module built on the meta device gets its weights straight from the
/// file (mapped when the dtype matches, read and converted otherwise), with the same strict key checks as Load.
/// </summary>
public sealed class StateDictMaterializeTests : IDisposable
{
#pragma warning disable IDE1006 // fields are named after their state-dict keys
    private sealed class MetaBlock : nn.Module<Tensor, Tensor>
    {
        private readonly PSStableDiffusion.Engine.Models.Common.LookupEmbedding embed;
        private readonly Linear proj;
        private readonly LayerNorm norm;
        private readonly Conv2d conv;
        private readonly GroupNorm group;

        public MetaBlock(Device device) : base(nameof(MetaBlock))
        {
            embed = new PSStableDiffusion.Engine.Models.Common.LookupEmbedding(10, 4, device: device);
            proj = nn.Linear(4, 3, device: device);
            norm = nn.LayerNorm(3, device: device);
            conv = nn.Conv2d(2, 4, 3, device: device);
            group = nn.GroupNorm(2, 4, device: device);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids) => norm.forward(proj.forward(embed.forward(ids)));

        public Tensor Image(Tensor input) => group.forward(conv.forward(input));
    }
#pragma warning restore IDE1006

    private readonly TempFolder _temp = new("materialize-tests-");

    public void Dispose() => _temp.Dispose();

    private static Dictionary<string, Tensor> Weights(ScalarType dtype)
    {
        var generator = new torch.Generator(11);
        var shapes = new Dictionary<string, long[]>
        {
            ["embed.weight"] = new long[] { 10, 4 }, ["proj.weight"] = new long[] { 3, 4 }, ["proj.bias"] = new long[] { 3 },
            ["norm.weight"] = new long[] { 3 }, ["norm.bias"] = new long[] { 3 }, ["conv.weight"] = new long[] { 4, 2, 3, 3 },
            ["conv.bias"] = new long[] { 4 }, ["group.weight"] = new long[] { 4 }, ["group.bias"] = new long[] { 4 },
        };
        return shapes.ToDictionary(kv => kv.Key, kv => torch.randn(kv.Value, generator: generator).to(dtype));
    }

    private string Write(string name, Dictionary<string, Tensor> tensors)
    {
        var path = Path.Combine(_temp.Path, name);
        SafeTensorsWriter.Write(path, tensors.Select(kv => (kv.Key, kv.Value)));
        return path;
    }

    /// <summary>The same module built on the CPU and loaded the old way (copy into random-initialised tensors).</summary>
    private static (Tensor Tokens, Tensor Image) Reference(string path, ScalarType dtype)
    {
        using var module = new MetaBlock(CPU);
        module.to(dtype);
        StateDictLoader.Load(module, new[] { path });
        using var ids = torch.tensor(new long[] { 1, 5, 9 });
        using var image = torch.linspace(-1, 1, 2 * 2 * 5 * 5).reshape(2, 2, 5, 5).to(dtype);
        return (module.forward(ids), module.Image(image));
    }

    [Theory]
    [InlineData(ScalarType.Float32, ScalarType.Float32)]   // mapped, no copy
    [InlineData(ScalarType.Float16, ScalarType.Float32)]   // read and converted
    [InlineData(ScalarType.Float32, ScalarType.BFloat16)]  // read and converted
    [InlineData(ScalarType.BFloat16, ScalarType.BFloat16)] // mapped
    public void MetaModuleGetsTheFileWeightsInTheWantedDtype(ScalarType fileType, ScalarType dtype)
    {
        var weights = Weights(fileType);
        var path = Write($"{fileType}-{dtype}.safetensors", weights);
        var (expectedTokens, expectedImage) = Reference(path, dtype);

        using (var module = new MetaBlock(META))
        {
            var result = StateDictLoader.Materialize(module, new[] { path }, dtype, CPU);
            Assert.Equal(weights.Count, result.LoadedCount);
            foreach (var (key, parameter) in module.named_parameters())
            {
                Assert.Equal(DeviceType.CPU, parameter.device_type);
                Assert.Equal(dtype, parameter.dtype);
                Assert.False(parameter.requires_grad, key);
                Assert.True(weights[key].to(dtype).eq(parameter).all().item<bool>(), $"{key} differs from the file");
            }
            using var ids = torch.tensor(new long[] { 1, 5, 9 });
            using var image = torch.linspace(-1, 1, 2 * 2 * 5 * 5).reshape(2, 2, 5, 5).to(dtype);
            Assert.True(expectedTokens.eq(module.forward(ids)).all().item<bool>());
            Assert.True(expectedImage.eq(module.Image(image)).all().item<bool>());

            // A mapped weight is copy-on-write: writing it never reaches the file.
            module.named_parameters().First(p => p.name == "proj.weight").parameter.ScalarSafe().Fill(0);
        }
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var file = SafeTensorsFile.Open(path);
        Assert.True(file.Read("proj.weight").eq(weights["proj.weight"]).all().item<bool>(), "the file changed");
    }

    [Fact]
    public void KeyProblemsAreReportedBeforeAnythingIsRead()
    {
        var weights = Weights(ScalarType.Float32);
        weights.Remove("norm.bias");
        weights["extra.weight"] = torch.zeros(2);
        var path = Write("bad.safetensors", weights);
        using var module = new MetaBlock(META);
        var error = Assert.Throws<ModelLoadException>(() => StateDictLoader.Materialize(module, new[] { path }, ScalarType.Float32, CPU));
        Assert.Contains("missing key 'norm.bias'", error.Message);
        Assert.Contains("unexpected key 'extra.weight'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.All(module.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
    }

    [Fact]
    public void AParameterOfAModuleTypeThatCannotBeReplacedIsNamed()
    {
        using var module = new ScaleOnly();
        var path = Write("scale.safetensors", new Dictionary<string, Tensor> { ["scale"] = torch.ones(3) });
        var error = Assert.Throws<NotSupportedException>(() => StateDictLoader.Materialize(module, new[] { path }, ScalarType.Float32, CPU));
        Assert.Contains("'scale'", error.Message);
    }

    private sealed class ScaleOnly : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006
        private readonly Parameter scale = new(torch.empty(3, device: META));
#pragma warning restore IDE1006

        public ScaleOnly() : base(nameof(ScaleOnly)) => RegisterComponents();

        public override Tensor forward(Tensor input) => input * scale;
    }
}
