using System.Text;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Clip;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Models.Clip;

public class CLIPTextModelStructureTests
{
    private static string RepoConfig(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            var candidate = Path.Combine(dir.FullName, "src", "Engine", "Models", "Configs", name);
            if (File.Exists(candidate)) return candidate;
            dir = dir.Parent;
        }
        throw new FileNotFoundException($"src/Engine/Models/Configs/{name} not found above {AppContext.BaseDirectory}");
    }

    [Fact]
    public void FullSizeSd21TextEncoderBuiltOnTheMetaDeviceHasTheCheckpointKeysAndShapes()
    {
        var config = CLIPTextConfig.Load(RepoConfig("sd21-text_encoder.json"));
        Assert.Equal(1024, config.HiddenSize);
        Assert.Equal(16, config.NumAttentionHeads);
        Assert.Equal(23, config.NumHiddenLayers);
        Assert.Equal(4096, config.IntermediateSize);
        Assert.Equal(49408, config.VocabSize);
        Assert.Equal(77, config.MaxPositionEmbeddings);
        Assert.Equal("gelu", config.HiddenAct);

        // The meta device allocates no storage: the 340M parameters cost nothing here.
        using var model = new CLIPTextModel(config, ScalarType.Float32, META);
        var state = model.state_dict();
        Assert.All(state.Values, t => Assert.True(t.is_meta));

        var expected = new Dictionary<string, long[]>
        {
            ["text_model.embeddings.token_embedding.weight"] = [49408, 1024],
            ["text_model.embeddings.position_embedding.weight"] = [77, 1024],
            ["text_model.final_layer_norm.weight"] = [1024],
            ["text_model.final_layer_norm.bias"] = [1024],
        };
        for (var i = 0; i < 23; i++)
        {
            var p = $"text_model.encoder.layers.{i}.";
            foreach (var proj in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                expected[p + $"self_attn.{proj}.weight"] = [1024, 1024];
                expected[p + $"self_attn.{proj}.bias"] = [1024];
            }
            foreach (var norm in new[] { "layer_norm1", "layer_norm2" })
            {
                expected[p + $"{norm}.weight"] = [1024];
                expected[p + $"{norm}.bias"] = [1024];
            }
            expected[p + "mlp.fc1.weight"] = [4096, 1024];
            expected[p + "mlp.fc1.bias"] = [4096];
            expected[p + "mlp.fc2.weight"] = [1024, 4096];
            expected[p + "mlp.fc2.bias"] = [1024];
        }

        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), state.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.True(shape.SequenceEqual(state[key].shape), $"{key}: [{string.Join(",", state[key].shape)}]");

        // Per layer: 4 attention projections 4·(1024² + 1024), fc1 1024·4096 + 4096, fc2 4096·1024 + 1024,
        // two layer norms 2·2·1024 = 12,596,224. Embeddings 49408·1024 + 77·1024, final norm 2·1024.
        const long perLayer = 4 * (1024L * 1024 + 1024) + (1024L * 4096 + 4096) + (4096L * 1024 + 1024) + 2 * 2 * 1024;
        const long total = 49408L * 1024 + 77L * 1024 + 23 * perLayer + 2 * 1024;
        Assert.Equal(340_387_840L, total);
        Assert.Equal(total, model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void TinyModelGivesTheExpectedOutputShapes()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var config = new CLIPTextConfig { HiddenSize = 8, IntermediateSize = 16, NumAttentionHeads = 2, NumHiddenLayers = 3, HiddenAct = "quick_gelu" };
        using var model = new CLIPTextModel(config);
        var ids = randint(0, 49408, [2, 77], dtype: ScalarType.Int64);
        var result = model.forward(ids, outputHiddenStates: true);
        Assert.Equal(new long[] { 2, 77, 8 }, result.LastHiddenState.shape);
        Assert.Equal(new long[] { 2, 8 }, result.PooledOutput.shape);
        Assert.Equal(4, result.HiddenStates!.Count);
    }

    [Fact]
    public void UnsupportedActivationAndBadHeadCountAreRejectedWithTheKeyName()
    {
        using var temp = new TempFolder("clip-config-");
        var path = temp.Combine("config.json");
        File.WriteAllText(path, """{"hidden_act": "relu"}""", Encoding.UTF8);
        var e = Assert.Throws<InvalidDataException>(() => CLIPTextConfig.Load(path));
        Assert.Contains("hidden_act", e.Message);
        File.WriteAllText(path, """{"hidden_size": 10, "num_attention_heads": 3}""", Encoding.UTF8);
        e = Assert.Throws<InvalidDataException>(() => CLIPTextConfig.Load(path));
        Assert.Contains("num_attention_heads", e.Message);
    }

    [Fact]
    public void CheckpointWithPositionIdsBufferLoadsButAWrongShapeIsNamed()
    {
        // Older transformers checkpoints (like the SD 2.1 release) carry text_model.embeddings.position_ids;
        // transformers ignores it on load, and so must we. A tensor of the wrong shape must be reported by key.
        using var scope = NewDisposeScope();
        var config = new CLIPTextConfig { VocabSize = 50, HiddenSize = 8, IntermediateSize = 16, NumAttentionHeads = 2, NumHiddenLayers = 1, MaxPositionEmbeddings = 77 };
        using var temp = new TempFolder("clip-");
        var folder = temp.Path;
        File.WriteAllText(Path.Combine(folder, "config.json"),
            System.Text.Json.JsonSerializer.Serialize(config), Encoding.UTF8);
        using var source = new CLIPTextModel(config);
        var tensors = source.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach());
        tensors["text_model.embeddings.position_ids"] = ScalarSafeTensor.Arange(77, ScalarType.Int64, CPU).unsqueeze(0);
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors.Select(kv => (kv.Key, kv.Value)));

        using var loaded = CLIPTextModel.FromPretrained(folder, ScalarType.Float32, CPU);
        var loadedState = loaded.state_dict();
        foreach (var (key, value) in source.state_dict())
            Assert.True(value.equal(loadedState[key]).all().item<bool>(), key);

        tensors["text_model.final_layer_norm.bias"] = zeros(4);
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors.Select(kv => (kv.Key, kv.Value)));
        var e = Assert.Throws<PSStableDiffusion.Engine.Loading.ModelLoadException>(() => CLIPTextModel.FromPretrained(folder, ScalarType.Float32, CPU));
        Assert.Contains("text_model.final_layer_norm.bias", e.Message);

        tensors.Remove("text_model.final_layer_norm.bias");
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors.Select(kv => (kv.Key, kv.Value)));
        e = Assert.Throws<PSStableDiffusion.Engine.Loading.ModelLoadException>(() => CLIPTextModel.FromPretrained(folder, ScalarType.Float32, CPU));
        Assert.Contains("text_model.final_layer_norm.bias", e.Message);
    }
}
