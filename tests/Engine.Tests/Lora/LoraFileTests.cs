using PSStableDiffusion.Engine.Checkpoints;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Runtime;
using PSStableDiffusion.Engine.Tests.Checkpoints;
using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>Reading LoRA files and mapping their names: against diffusers 0.29.2's own kohya conversion, and the other
/// formats against the kohya/PEFT files holding the same tensors; bad files refused with their own exceptions.</summary>
public class LoraFileTests(GoldenModels models) : IClassFixture<GoldenModels>
{
    private LoraKeyMap MapFor(string caseName)
    {
        var model = models.Get(caseName);
        return new LoraKeyMap(model.Unet, model.TextEncoder);
    }

    [Fact]
    public void KohyaNamesLandWhereDiffusersOwnConversionPutsThem()
    {
        var map = MapFor("txt2img_eps_dpmpp");
        var check = LoraFixtures.Cases.RootElement.GetProperty("diffusers_kohya_conversion");
        // 0.29.2 rewrites every '_' of lora_unet_conv_in / conv_out to '.', giving no module of the model
        // ("conv.in"): there the model's own module, conv_in, is the only layer the name can mean.
        var notInModel = check.GetProperty("not_in_model").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        Assert.Equal(["lora_unet_conv_in", "lora_unet_conv_out"], notInModel.Order());
        int compared = 0;
        foreach (var entry in check.GetProperty("modules").EnumerateObject())
        {
            Assert.True(map.TryResolve(entry.Name, out var targets), $"{entry.Name} maps to nothing");
            var target = Assert.Single(targets);
            var ours = (target.Part == LoraPart.Unet ? "unet." : "text_encoder.") + target.Module;
            if (notInModel.Contains(entry.Name)) Assert.Equal(entry.Value.GetString()!.Replace('.', '_'), ours.Replace('.', '_'));
            else Assert.Equal(entry.Value.GetString(), ours);
            compared++;
        }
        using var file = LoraFile.Open(LoraFixtures.Path("style_kohya.safetensors"));
        Assert.Equal(file.Layers.Count, compared); // every layer of the file was cross-checked
        Assert.Contains(file.Layers, l => l.IsConvolution);
        Assert.All(file.Layers, l => Assert.Equal(0.5, l.Scale)); // alpha 2, rank 4
    }

    [Theory]
    [InlineData("style_ldm.safetensors", "style_kohya.safetensors")]
    [InlineData("subject_old_diffusers.safetensors", "subject_peft.safetensors")]
    public void OtherNamingsGiveTheSameUpdatesAsTheKohyaOrPeftFile(string other, string reference)
    {
        var map = MapFor("txt2img_eps_dpmpp");
        using var updates = Updates(map, other);
        using var expected = Updates(map, reference);
        var expectedByLayer = new Dictionary<nn.Module, Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var (layer, delta) in expected.Deltas) expectedByLayer[layer] = delta;
        int compared = 0;
        foreach (var (layer, delta) in updates.Deltas)
        {
            Assert.True(expectedByLayer.TryGetValue(layer, out var want), "a layer the reference file does not change");
            Assert.True(LoraFixtures.Equal(want, delta), "updates differ");
            compared++;
        }
        Assert.True(compared >= 20, $"only {compared} layers compared");
        if (other.Contains("old")) Assert.Equal(expectedByLayer.Count, compared);
    }

    private static LoraUpdates Updates(LoraKeyMap map, string fileName)
    {
        using var file = LoraFile.Open(LoraFixtures.Path(fileName));
        var updates = new LoraUpdates(map);
        updates.Add(file, 1.0, 1.0);
        return updates;
    }

    [Fact]
    public void LoraMidIsTheCpProductScaledByAlphaOverRank()
    {
        using var file = LoraFile.Open(LoraFixtures.Path("locon_mid.safetensors"));
        var layer = Assert.Single(file.Layers);
        Assert.NotNull(layer.Mid);
        using var product = layer.Product();
        using var io = LoraFixtures.Io();
        using var expected = io.Read("expected_delta_locon_mid");
        Golden.AssertClose(expected, product.ScalarSafe() * layer.Scale, 1e-7, "lora_mid update");
    }

    [Fact]
    public void PeftAlphaComesFromTheAdapterMetadata()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("meta.safetensors");
        using var down = randn(4, 8);
        using var up = randn(8, 4);
        SafeTensorsWriter.Write(path, [("unet.conv_in.lora_A.weight", down.reshape(4, 8, 1, 1)), ("unet.conv_in.lora_B.weight", up.reshape(8, 4, 1, 1)),
                ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", down), ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", up)],
            new Dictionary<string, string> { [LoraFile.AdapterMetadataKey] = "{\"unet.lora_alpha\": 8, \"unet.r\": 4, \"text_encoder.lora_alpha\": 4, \"text_encoder.alpha_pattern\": {\"q_proj\": 2}}" });
        using var file = LoraFile.Open(path);
        Assert.Equal(LoraFormat.Peft, file.Format);
        Assert.Equal(2.0, file.Layers.Single(l => l.Name.StartsWith("unet.")).Scale);
        Assert.Equal(0.5, file.Layers.Single(l => l.Name.StartsWith("text_encoder.")).Scale);
    }

    [Fact]
    public void SafeTensorsWhoseHeaderLengthStartsWithAPickleProtocolByteIsStillSafeTensors()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("header-0x180.safetensors");
        var json = "{\"lora_te_a.lora_down.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]}," +
                   "\"lora_te_a.lora_up.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[4,8]}}";
        var header = System.Text.Encoding.UTF8.GetBytes(json.PadRight(0x180));  // length 0x180: first byte 0x80, a pickle PROTO
        var bytes = BitConverter.GetBytes((long)header.Length).Concat(header).Concat(BitConverter.GetBytes(1f)).Concat(BitConverter.GetBytes(2f)).ToArray();
        Assert.Equal(0x80, bytes[0]);
        File.WriteAllBytes(path, bytes);
        using var file = LoraFile.Open(path);
        Assert.Equal(2f, file.Layers.Single().Product().item<float>());
    }

    [Fact]
    public void ExplicitScaleWinsAndNoAlphaMeansOne()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("scale.safetensors");
        using var down = randn(4, 8);
        using var up = randn(8, 4);
        using var alpha = tensor(2.0f);
        using var scale = tensor(0.25f);
        SafeTensorsWriter.Write(path, [("lora_te_a.lora_down.weight", down), ("lora_te_a.lora_up.weight", up), ("lora_te_a.alpha", alpha), ("lora_te_a.scale", scale),
            ("lora_te_b.lora_down.weight", down), ("lora_te_b.lora_up.weight", up)]);
        using var file = LoraFile.Open(path);
        Assert.Equal(0.25, file.Layers.Single(l => l.Name == "lora_te_a").Scale);
        Assert.Equal(1.0, file.Layers.Single(l => l.Name == "lora_te_b").Scale);
    }

    [Fact]
    public void ShortHashIsTheSha256OfTheTensorDataAfterTheHeader()
    {
        var path = LoraFixtures.Path("style_kohya.safetensors");
        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes.AsSpan((int)(8 + headerLength))))[..12].ToLowerInvariant();
        using var file = LoraFile.Open(path);
        Assert.Equal(expected, file.ShortHash);
    }

    [Fact]
    public void LoraNamesAreFoundAsEmbeddingsAreInLoraPathThenSdLora()
    {
        using var folder = new TempFolder();
        var copy = folder.Combine("Style_Kohya.safetensors");
        File.Copy(LoraFixtures.Path("style_kohya.safetensors"), copy);
        var missing = folder.Combine("nowhere");
        string? Variable(string name) => name == LoraFile.EnvironmentVariable
            ? string.Join(Path.PathSeparator, missing, Path.GetDirectoryName(LoraFixtures.Path("cases.json"))!)
            : null;

        var files = LoraFile.FindFiles([folder.Path], Variable);

        Assert.True(files.TryFind("style_kohya", out var found));
        Assert.Equal(copy, found.Path); // LoraPath's file hides SD_LORA's of the same name
        Assert.Contains(files.Shadowed, f => f.Name == "style_kohya");
        Assert.True(files.TryFind("subject_peft", out _));
        Assert.Equal([missing], files.MissingFromVariable);
        var e = Assert.Throws<PSStableDiffusion.Engine.Networks.NetworkPathNotFoundException>(() => LoraFile.FindFiles([missing]));
        Assert.Equal("LoraPath", e.ParameterName);
    }

    // ---- bad input: each refused with its own exception, and the model untouched ----

    [Fact]
    public void KeyThatMapsToNothingIsNamed()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("stray.safetensors");
        using var source = LoraFile.Open(LoraFixtures.Path("subject_peft.safetensors"));
        var layer = source.Layers[0];
        SafeTensorsWriter.Write(path, [(layer.Name + ".lora_A.weight", layer.Down), (layer.Name + ".lora_B.weight", layer.Up),
            ("unet.down_blocks.7.attentions.0.proj_in.lora_A.weight", layer.Down), ("unet.down_blocks.7.attentions.0.proj_in.lora_B.weight", layer.Up)]);
        var error = RefusedWithModelUntouched<UnknownLoraKeyException>(path);
        Assert.Equal(["unet.down_blocks.7.attentions.0.proj_in"], error.Keys);
        Assert.Contains("unet.down_blocks.7.attentions.0.proj_in", error.Message);
    }

    [Fact]
    public void LoraForAnotherWidthIsAMismatchNamingFileAndLayer()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("sd1.safetensors");
        using var down = randn(4, 768);  // an SD 1.x text encoder is 768 wide
        using var up = randn(768, 4);
        SafeTensorsWriter.Write(path, [("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", down),
            ("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", up)]);
        var error = RefusedWithModelUntouched<LoraModelMismatchException>(path);
        Assert.Equal("lora_te_text_model_encoder_layers_0_self_attn_q_proj", error.Layer);
        Assert.Contains(path, error.Message);
        Assert.Contains("[768, 768]", error.Message);
    }

    [Fact]
    public void TruncatedFileIsRefusedAsSafeTensors()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("cut.safetensors");
        var bytes = File.ReadAllBytes(LoraFixtures.Path("style_kohya.safetensors"));
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        RefusedWithModelUntouched<SafeTensorsFormatException>(path);
    }

    [Fact]
    public void PickleCallingAGlobalIsRefusedWithoutRunningIt()
    {
        using var temp = new TempFolder();
        var marker = temp.Combine("pwned");
        var path = temp.Combine("evil.pt");
        var pickle = new PickleWriter().Proto(2).Op('}').Put().Mark().Str("lora_te_a.alpha")
            .Global("os", "system").Str($"touch {marker}").Raw(0x85).Put().Op('R').Put().Op('u').Stop().ToArray();
        TorchSaveWriter.SaveRawPickle(path, pickle);
        var error = RefusedWithModelUntouched<UnsafeCheckpointException>(path);
        Assert.Equal("os.system", error.RefusedGlobal);
        Assert.False(File.Exists(marker), "the pickled command ran");
    }

    [Fact]
    public void UpWithoutDownIsAFormatError()
    {
        using var temp = new TempFolder();
        var path = temp.Combine("half.safetensors");
        using var up = randn(8, 4);
        SafeTensorsWriter.Write(path, [("lora_te_a.lora_up.weight", up)]);
        var error = Assert.Throws<LoraFormatException>(() => LoraFile.Open(path));
        Assert.Contains("lora_te_a", error.Message);
    }

    private T RefusedWithModelUntouched<T>(string path) where T : Exception
    {
        var model = models.Get("txt2img_eps_dpmpp");
        var snapshot = LoraFixtures.Snapshot(model);
        using var golden = Golden.Case("txt2img_eps_dpmpp");
        var request = GoldenRequests.For(golden) with { Loras = [new LoraRequest(LoraFixtures.Path("style_kohya.safetensors")), new LoraRequest(path)] };
        var error = Assert.Throws<T>(() => StableDiffusionPipeline.Generate(model, request));
        LoraFixtures.AssertUnchanged(model, snapshot);
        return error;
    }
}
