using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Loading;

/// <summary>
/// The one weight-file rule (diffusers 0.29.2's: the variant where the component has it, else the plain weights; never
/// another variant), run through both of its callers with the same cases: a diffusers folder on disk and a hub
/// repository's file list.
/// </summary>
public sealed class WeightFileSelectionTests
{
    private const string St = "diffusion_pytorch_model.safetensors";
    private const string Fp16St = "diffusion_pytorch_model.fp16.safetensors";
    private const string Bin = "diffusion_pytorch_model.bin";
    private const string Fp16Bin = "diffusion_pytorch_model.fp16.bin";

    /// <summary>Files of one component folder, the variant asked for, and the weights the rule picks (null: none).</summary>
    public static TheoryData<string[], string?, string[]?> Cases => new()
    {
        { new[] { St }, null, new[] { St } },
        { new[] { St, Fp16St }, null, new[] { St } },
        { new[] { St, Fp16St }, "fp16", new[] { Fp16St } },
        // The component lacks the variant: its plain weights, as diffusers loads them.
        { new[] { St }, "fp16", new[] { St } },
        // Only another variant: diffusers loads none of it (no plain file to load without a variant).
        { new[] { Fp16St }, null, null },
        { new[] { Fp16St }, "ema", null },
        // safetensors before pickles, within the chosen tier; the variant's pickles before plain safetensors.
        { new[] { Bin, St }, null, new[] { St } },
        { new[] { Fp16Bin, St }, "fp16", new[] { Fp16Bin } },
        { new[] { Bin, Fp16St }, null, new[] { Bin } },
        // Shards load as one set, with their index.
        {
            new[] { "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors",
                "diffusion_pytorch_model.safetensors.index.json", Fp16St },
            null,
            new[] { "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors",
                "diffusion_pytorch_model.safetensors.index.json" }
        },
        {
            new[] { St, "diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
                "diffusion_pytorch_model.safetensors.index.fp16.json" },
            "fp16",
            new[] { "diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
                "diffusion_pytorch_model.safetensors.index.fp16.json" }
        },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheRuleChoosesAsDiffusersDoes(string[] files, string? variant, string[]? expected)
    {
        Assert.Equal(expected, WeightFileSelection.Select(files.Append("config.json"), variant));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void AFolderOnDiskLoadsWhatTheRuleChooses(string[] files, string? variant, string[]? expected)
    {
        using var temp = new TempFolder("sd-weight-files-");
        foreach (var file in files.Append("config.json")) File.WriteAllBytes(temp.Combine(file), Array.Empty<byte>());
        string Choose() => string.Join("|", DiffusersFolderLoader.WeightFiles(temp.Path, "diffusion_pytorch_model", variant, log: null)
            .Select(Path.GetFileName));

        if (expected is null)
        {
            var missing = Assert.Throws<FileNotFoundException>(Choose);
            Assert.Contains("the folder has the variants", missing.Message); // says what there is instead
        }
        else
        {
            // The weights themselves (safetensors or pickled .bin); a sharded set's index JSON only names them.
            Assert.Equal(string.Join("|", expected.Where(f => !f.EndsWith(".json", StringComparison.Ordinal))), Choose());
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheHubDownloadsWhatTheRuleChooses(string[] files, string? variant, string[]? expected)
    {
        const string modelIndex = """{ "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"] }""";
        var available = files.Append("config.json").Select(f => "unet/" + f).Append(DiffusersFileSelection.ModelIndex).ToList();
        IReadOnlyList<string> Choose() => DiffusersFileSelection.Select(available, modelIndex, variant, new[] { "unet" });

        if (expected is null)
            Assert.Throws<HubNotFoundException>(Choose);
        else
            Assert.Equal(new[] { DiffusersFileSelection.ModelIndex, "unet/config.json" }.Concat(expected.Select(f => "unet/" + f)), Choose());
    }

    [Theory]
    [InlineData("diffusion_pytorch_model.safetensors", "safetensors", null)]
    [InlineData("diffusion_pytorch_model.fp16.safetensors", "safetensors", "fp16")]
    [InlineData("diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "safetensors", "fp16")]
    [InlineData("diffusion_pytorch_model-00001-of-00002.safetensors", "safetensors", null)]
    [InlineData("diffusion_pytorch_model.safetensors.index.fp16.json", "safetensors", "fp16")]
    [InlineData("pytorch_model.bin.index.json", "bin", null)]
    [InlineData("pytorch_model.bin", "bin", null)]
    public void WeightFileNamesAreClassified(string file, string format, string? variant)
    {
        Assert.Equal((format, variant), WeightFileSelection.Describe(file));
    }
}
