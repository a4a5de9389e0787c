using System.Security.Cryptography;
using System.Text.Json;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Tests.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>Finding a replayed LoRA by its recorded hash where its name gives no file, or a file with another hash, as
/// AUTOMATIC1111's Lora extension does when infotext is pasted (<c>infotext_pasted</c>,
/// <c>available_network_hash_lookup</c>); hashes taken with AUTOMATIC1111's algorithm (the SHA-256 of a safetensors
/// file's bytes after its header, first 12 hex digits, computed here by the test itself).</summary>
public class LoraFinderTests(GoldenModels models) : IClassFixture<GoldenModels>, IDisposable
{
    private readonly TempFolder _folder = new("sd-lora-finder-");

    public void Dispose() => _folder.Dispose();

    /// <summary>AUTOMATIC1111's short LoRA hash of a safetensors file (its addnet hash, cut to 12 digits).</summary>
    private static string A1111Hash(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        return Convert.ToHexString(SHA256.HashData(bytes.AsSpan((int)(8 + headerLength))))[..12].ToLowerInvariant();
    }

    private ModelHashCache Cache => new(_folder.Combine("cache", "model-hashes.json"));

    /// <summary>A LoRA folder holding the fixture files under other names.</summary>
    private string Folder(params (string Fixture, string Name)[] files)
    {
        var folder = Directory.CreateDirectory(_folder.Combine("loras")).FullName;
        foreach (var (fixture, name) in files)
            File.Copy(LoraFixtures.Path(fixture + ".safetensors"), Path.Combine(folder, name + ".safetensors"));
        return folder;
    }

    private LoraFinder Finder(string folder) =>
        new(() => LoraFile.FindFiles([folder], _ => null), Cache);

    [Fact]
    public void ARenamedFileIsFoundByItsRecordedHash()
    {
        var folder = Folder(("subject_peft", "a_subject"), ("style_kohya", "my_style_v2"));
        var recorded = A1111Hash(LoraFixtures.Path("style_kohya.safetensors"));
        var log = new List<string>();

        var found = Finder(folder).Find("style_kohya", recorded, log: log.Add);

        Assert.Equal(Path.Combine(folder, "my_style_v2.safetensors"), found.Path);
        Assert.Equal(LoraFoundBy.Hash, found.FoundBy);
        Assert.Equal(recorded, found.Hash);
        Assert.Contains(log, l => l.Contains("style_kohya") && l.Contains("my_style_v2") && l.Contains(recorded));
        // Records of other tools carry 10 digits, in any case.
        Assert.Equal(found.Path, Finder(folder).Find("style_kohya", recorded[..10].ToUpperInvariant()).Path);
        // The files hashed are remembered: another search reads them from the cache, not from disk.
        var cached = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Cache.FilePath))!;
        Assert.Contains(cached, e => e.Key.StartsWith("lora-a1111:", StringComparison.Ordinal)
            && e.Key.Contains("my_style_v2.safetensors") && e.Value == recorded);
    }

    [Fact]
    public void AFileWithTheRecordedHashWinsOverTheNamedFileWithAnotherHash()
    {
        // AUTOMATIC1111 puts the file with the recorded hash into the tag whatever the name's file is.
        var folder = Folder(("subject_peft", "style_kohya"), ("style_kohya", "zz_renamed"));
        var recorded = A1111Hash(LoraFixtures.Path("style_kohya.safetensors"));
        var log = new List<string>();

        var found = Finder(folder).Find("style_kohya", recorded, log: log.Add);

        Assert.Equal(Path.Combine(folder, "zz_renamed.safetensors"), found.Path);
        Assert.Equal(LoraFoundBy.Hash, found.FoundBy);
        var subjectHash = A1111Hash(LoraFixtures.Path("subject_peft.safetensors"));
        Assert.Contains(log, l => l.Contains(subjectHash) && l.Contains(recorded) && l.Contains("zz_renamed"));
    }

    [Fact]
    public void TheNamedFileWithAnotherHashIsUsedWithAWarningWhenNoFileHasTheRecordedHash()
    {
        var folder = Folder(("style_kohya", "style_kohya"), ("subject_peft", "subject"));
        var recorded = "0123456789ab";
        var log = new List<string>();

        var found = Finder(folder).Find("style_kohya", recorded, log: log.Add);

        Assert.Equal(Path.Combine(folder, "style_kohya.safetensors"), found.Path);
        Assert.Equal(LoraFoundBy.NameWithOtherHash, found.FoundBy);
        Assert.Equal(A1111Hash(found.Path), found.Hash);
        Assert.Contains(log, l => l.Contains(recorded) && l.Contains("no file"));
        // Applying it with the record's hash warns that the image may differ.
        var warnings = new List<string>();
        var request = new LoraRequest(found.Path, 0.8, 0.8) { RecordedHash = recorded };
        using (AppliedLoras.Apply(models.Get("txt2img_eps_dpmpp"), [request], warn: warnings.Add)) { }
        var warning = Assert.Single(warnings);
        Assert.Contains(recorded, warning);
        Assert.Contains("may differ", warning);
    }

    [Fact]
    public void NeitherTheNameNorTheHashIsAnErrorNamingBoth()
    {
        var folder = Folder(("subject_peft", "subject"));
        var recorded = A1111Hash(LoraFixtures.Path("style_kohya.safetensors"));

        var e = Assert.Throws<LoraNotFoundException>(() => Finder(folder).Find("style_kohya", recorded));

        Assert.Equal("style_kohya", e.Name);
        Assert.Equal(recorded, e.Hash);
        Assert.Contains("'style_kohya'", e.Message);
        Assert.Contains(recorded, e.Message);
        Assert.Contains(folder, e.Message);
        // Without a recorded hash it is the error it always was, without a hash.
        var plain = Assert.Throws<LoraNotFoundException>(() => Finder(folder).Find("style_kohya"));
        Assert.Null(plain.Hash);
        Assert.DoesNotContain("hash", plain.Message);
    }

    [Fact]
    public void TheNameAloneDecidesWithoutAHashAndTheRecordedFileComesFirst()
    {
        var folder = Folder(("subject_peft", "style_kohya"));
        var elsewhere = LoraFixtures.Path("style_kohya.safetensors");

        Assert.Equal(Path.Combine(folder, "style_kohya.safetensors"), Finder(folder).Find("style_kohya").Path);
        var found = Finder(folder).Find("style_kohya", recordedPath: elsewhere);
        Assert.Equal((elsewhere, LoraFoundBy.Name), (found.Path, found.FoundBy));
        // With the hash: the recorded file has it, so the folders are not searched.
        var hashed = new LoraFinder(() => throw new InvalidOperationException("the folders were searched"), Cache)
            .Find("style_kohya", A1111Hash(elsewhere), elsewhere);
        Assert.Equal(elsewhere, hashed.Path);
    }

    [Fact]
    public void TheShortHashWithoutOpeningTheFileIsTheOpenedFilesHash()
    {
        foreach (var name in new[] { "style_kohya", "subject_peft", "locon_mid" })
        {
            var path = LoraFixtures.Path(name + ".safetensors");
            using var file = LoraFile.Open(path);
            Assert.Equal(A1111Hash(path), LoraFile.ShortHashOf(path, Cache));
            Assert.Equal(file.ShortHash, LoraFile.ShortHashOf(path, Cache));
        }
        // A header length that runs past the end (no safetensors file; it never opens) is hashed over all its bytes.
        var lying = _folder.Combine("lying.safetensors");
        var bytes = new byte[64];
        BitConverter.GetBytes(1L << 40).CopyTo(bytes, 0);
        bytes[8] = (byte)'{';
        File.WriteAllBytes(lying, bytes);
        var whole = Convert.ToHexString(SHA256.HashData(bytes))[..12].ToLowerInvariant();
        Assert.Equal(whole, LoraFile.ShortHashOf(lying, Cache));
    }

    // ---- the AUTOMATIC1111 text of LoRAs given as a parameter ----

    [Fact]
    public void ParameterLorasGetATagInTheA1111TextSoAReplayAppliesThemOnce()
    {
        var record = new GenerationRecord
        {
            Prompt = "a cat <lora:style_kohya:0.8>",
            NegativePrompt = "blurry",
            Steps = 5, Seed = 42, Width = 64, Height = 48, GuidanceScale = 7.5,
            Scheduler = "DPMSolverMultistepScheduler",
            Loras =
            [
                new LoraUse("style_kohya", "aaaaaaaaaaaa", "/l/style_kohya.safetensors", 0.8, 0.8, FromPrompt: true),
                new LoraUse("subject", "bbbbbbbbbbbb", "/l/subject.safetensors", 0.6, 0.6),
                new LoraUse("split", "cccccccccccc", "/l/split.safetensors", 0.5, 1.25),
            ],
        };

        var text = A1111Parameters.Format(record);

        Assert.StartsWith("a cat <lora:style_kohya:0.8> <lora:subject:0.6> <lora:split:0.5:1.25>\nNegative prompt: blurry\n", text);
        Assert.Contains("Lora hashes: \"style_kohya: aaaaaaaaaaaa, subject: bbbbbbbbbbbb, split: cccccccccccc\"", text);
        var parsed = A1111Parameters.Parse(text);
        // Every LoRA is the prompt's now: the tags apply them, nothing applies them a second time as a parameter.
        Assert.All(parsed.Loras!, l => Assert.True(l.FromPrompt, l.Name));
        Assert.Equal(["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"], parsed.Loras!.Select(l => l.Hash));
        var tags = LoraPromptTags.Extract(parsed.Prompt).Tags;
        Assert.Equal([("style_kohya", 0.8, 0.8), ("subject", 0.6, 0.6), ("split", 0.5, 1.25)],
            tags.Select(t => (t.Name, t.TextEncoderMultiplier, t.UnetMultiplier)));
        // The record's own prompt stays as given (its JSON replays the parameter LoRAs from its Loras).
        Assert.Equal("a cat <lora:style_kohya:0.8>", record.Prompt);
    }

    [Fact]
    public void ANameNoTagCanHoldGetsNoTag()
    {
        Assert.Null(LoraPromptTags.Format("odd:name", 1, 1));
        Assert.Null(LoraPromptTags.Format("a>b", 1, 1));
        Assert.Null(LoraPromptTags.Format("", 1, 1));
        Assert.Equal("<lora:x:1>", LoraPromptTags.Format("x", 1, 1));
    }
}
