using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Tests.Support;
using SkiaSharp;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Imaging;

public class PngMetadataTests
{
    private static SDImage NoiseImage(int width, int height, GenerationRecord? record = null, int seed = 7)
    {
        var pixels = new byte[width * height * 3];
        new Random(seed).NextBytes(pixels);
        return new SDImage(width, height, pixels, record);
    }

    private static GenerationRecord FullRecord() => new()
    {
        Prompt = "A photograph of an astronaut riding a horse, highly detailed, 8k\nsecond line",
        NegativePrompt = "blurry, low quality",
        Seed = 42,
        Steps = 20,
        GuidanceScale = 7.5,
        Scheduler = "DPMSolverMultistepScheduler",
        SchedulerConfig = new JsonObject
        {
            ["_class_name"] = "DPMSolverMultistepScheduler",
            ["beta_schedule"] = "scaled_linear",
            ["use_karras_sigmas"] = true,
            ["num_train_timesteps"] = 1000,
            ["trained_betas"] = null,
        },
        Width = 40,
        Height = 24,
        ModelPath = "/models/stable-diffusion-2-1",
        ModelHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        DType = "float32",
        Device = "cpu",
        Timings = new() { ["text_encoder"] = 0.25, ["denoise"] = 12.5, ["vae_decode"] = 1.0 },
        ModuleVersion = "0.1.0",
        PipelineKind = PipelineKind.Img2Img,
        ImageIndex = 1,
        Strength = 0.6,
        Eta = 0.0,
        SourceImageHash = "abc",
        CreatedUtc = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero),
    };

    /// <summary>Text chunks of a PNG as (type, keyword, text), in file order.</summary>
    private static List<(string Type, string Keyword, string Text)> TextChunks(byte[] png)
    {
        var (_, chunks) = PngChunks.Parse(png, null);
        var result = new List<(string, string, string)>();
        foreach (var chunk in chunks.Where(c => c.Type is "tEXt" or "iTXt"))
        {
            var single = PngChunks.ReadText(png, [chunk], null).Single();
            result.Add((chunk.Type, single.Key, single.Value));
        }
        return result;
    }

    [Fact]
    public void RecordAndPixelsSurviveAPngRoundTripThroughAFile()
    {
        var image = NoiseImage(40, 24, FullRecord());
        using var temp = new TempFolder("psd-imaging-");
        var path = temp.Combine("image.png");
        try
        {
            image.Save(path);
            Assert.Equal(Path.GetFullPath(path), image.SourcePath);
            var loaded = SDImage.Load(path);
            Assert.Equal(image.Pixels, loaded.Pixels);
            Assert.Equal((40, 24), (loaded.Width, loaded.Height));
            Assert.Equal(image.Record.ToJson(), loaded.Record.ToJson());
            Assert.Equal(Path.GetFullPath(path), loaded.SourcePath);
            Assert.Equal("stable-diffusion-2-1", loaded.Model);
            Assert.Equal(42, loaded.Seed);
            Assert.Equal(PipelineKind.Img2Img, loaded.PipelineKind);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void PngCarriesA1111ParametersRightAfterTheHeaderThenTheJsonRecord()
    {
        var image = NoiseImage(40, 24, FullRecord());
        var png = ImageCodec.EncodePng(image);
        var (_, chunks) = PngChunks.Parse(png, null);
        Assert.Equal(["IHDR", "tEXt", "iTXt"], chunks.Take(3).Select(c => c.Type));

        var texts = TextChunks(png);
        Assert.Equal(("tEXt", "parameters"), (texts[0].Type, texts[0].Keyword));
        Assert.Equal(
            "A photograph of an astronaut riding a horse, highly detailed, 8k\nsecond line\n" +
            "Negative prompt: blurry, low quality\n" +
            "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 42, Size: 40x24, " +
            "Model hash: 0123456789, Model: stable-diffusion-2-1, Denoising strength: 0.6, Eta: 0, Version: PSStableDiffusion 0.1.0",
            texts[0].Text);
        Assert.Equal(("iTXt", ImageCodec.RecordKeyword), (texts[1].Type, texts[1].Keyword));
        Assert.Equal(image.Record.ToJson(), texts[1].Text);
        Assert.Contains("\"pipeline_kind\":\"img2img\"", texts[1].Text);
        Assert.Contains("\"guidance_scale\":7.5", texts[1].Text);
        Assert.Contains("\"dtype\":\"float32\"", texts[1].Text);
        Assert.Contains("\"scheduler_config\":{\"_class_name\":\"DPMSolverMultistepScheduler\"", texts[1].Text);
    }

    [Fact]
    public void NonLatin1PromptGoesToAnInternationalParametersChunk()
    {
        var record = new GenerationRecord { Prompt = "café, 日本, 🚀", Steps = 5, Scheduler = "DDIMScheduler", Width = 8, Height = 8 };
        var png = ImageCodec.EncodePng(NoiseImage(8, 8, record));
        var parameters = TextChunks(png).Single(t => t.Keyword == "parameters");
        Assert.Equal("iTXt", parameters.Type);
        Assert.StartsWith("café, 日本, 🚀\nSteps: 5, Sampler: DDIM,", parameters.Text);
        Assert.Equal("café, 日本, 🚀", ImageCodec.Decode(png).Prompt);
    }

    [Fact]
    public void A1111PngWithoutOurRecordIsParsed()
    {
        // A PNG as the web UI writes it: Skia pixels, one tEXt "parameters" chunk after IHDR.
        var plain = SKImage.FromPixelCopy(new SKImageInfo(16, 8, SKColorType.Rgba8888, SKAlphaType.Opaque), new byte[16 * 8 * 4]);
        using var encoded = plain.Encode(SKEncodedImageFormat.Png, 100);
        var text = "masterpiece, a fox in the snow\nby an unknown artist\n" +
                   "Negative prompt: lowres,\nbad anatomy\n" +
                   "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3456789012, Size: 16x8, Model hash: 2c02b20a, " +
                   "Model: \"v2-1_768, ema\", Denoising strength: 0.45, Clip skip: 2, ENSD: 31337";
        var png = PngChunks.InsertAfterHeader(encoded.ToArray(), [PngChunks.BuildTextChunk("parameters", text)]);

        var image = ImageCodec.Decode(png, "a1111.png");
        var r = image.Record;
        Assert.Equal("masterpiece, a fox in the snow\nby an unknown artist", r.Prompt);
        Assert.Equal("lowres,\nbad anatomy", r.NegativePrompt);
        Assert.Equal(28, r.Steps);
        Assert.Equal("DPMSolverMultistepScheduler", r.Scheduler);
        Assert.True(r.SchedulerConfig!["use_karras_sigmas"]!.GetValue<bool>());
        Assert.Equal(6.5, r.GuidanceScale);
        Assert.Equal(3456789012L, r.Seed);
        Assert.Equal((16, 8), (r.Width, r.Height));
        Assert.Equal("2c02b20a", r.ModelHash);
        Assert.Equal("v2-1_768, ema", r.ModelPath);
        Assert.Equal(0.45, r.Strength);
        Assert.Equal("a1111.png", image.SourcePath);
    }

    [Fact]
    public void A1111TextWithoutFieldLineIsAllPrompt()
    {
        var r = A1111Parameters.Parse("just a prompt\nNegative prompt: ugly");
        Assert.Equal("just a prompt", r.Prompt);
        Assert.Equal("ugly", r.NegativePrompt);
        Assert.Equal(0, r.Steps);
    }

    [Fact]
    public void TextualInversionHashesAreWrittenAndReadAsTheWebUiWritesThem()
    {
        // sd_hijack_clip.py: "TI hashes" holds "name: shorthash" pairs joined by ", ", quoted as the value has ':' and ','.
        var text = "a fox\nNegative prompt: bad-prompt\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x8, " +
                   "TI hashes: \"bad-prompt: 0123456789ab, my-style: ba9876543210\", Version: v1.10.1";
        var parsed = A1111Parameters.Parse(text);
        Assert.Equal(new Dictionary<string, string> { ["bad-prompt"] = "0123456789ab", ["my-style"] = "ba9876543210" }, parsed.Embeddings);
        Assert.Contains("TI hashes: \"bad-prompt: 0123456789ab, my-style: ba9876543210\"", A1111Parameters.Format(parsed));
        var record = FullRecord();
        record.Embeddings = new() { ["odd:name,x"] = "aaaaaaaaaaaa" };
        Assert.Equal(new Dictionary<string, string> { ["oddnamex"] = "aaaaaaaaaaaa" }, A1111Parameters.Parse(A1111Parameters.Format(record)).Embeddings);
        Assert.Null(A1111Parameters.Parse(A1111Parameters.Format(FullRecord())).Embeddings);
    }

    [Fact]
    public void FormattedParametersParseBackToTheSameFields()
    {
        var record = FullRecord();
        record.ModelPath = "/models/odd, name: \"x\".safetensors";
        var parsed = A1111Parameters.Parse(A1111Parameters.Format(record));
        Assert.Equal(record.Prompt, parsed.Prompt);
        Assert.Equal(record.NegativePrompt, parsed.NegativePrompt);
        Assert.Equal((record.Steps, record.GuidanceScale, record.Seed), (parsed.Steps, parsed.GuidanceScale, parsed.Seed));
        Assert.Equal((record.Width, record.Height), (parsed.Width, parsed.Height));
        Assert.Equal(record.Scheduler, parsed.Scheduler);
        Assert.Equal("odd, name: \"x\"", parsed.ModelPath);
        Assert.Equal(record.Strength, parsed.Strength);
        Assert.Equal(record.ModuleVersion, parsed.ModuleVersion);
    }

    [Fact]
    public void PngWithoutTextGivesAnEmptyRecordSizedToTheImage()
    {
        var plain = SKImage.FromPixelCopy(new SKImageInfo(5, 3, SKColorType.Rgba8888, SKAlphaType.Opaque), new byte[5 * 3 * 4]);
        using var encoded = plain.Encode(SKEncodedImageFormat.Png, 100);
        var image = ImageCodec.Decode(encoded.ToArray());
        Assert.Equal("", image.Prompt);
        Assert.Equal((5, 3), (image.Record.Width, image.Record.Height));
        Assert.Null(image.Record.PipelineKind);
    }

    [Fact]
    public void JpegIsReadThroughSkiaWithAnEmptyRecord()
    {
        var rgba = Enumerable.Repeat((byte)128, 12 * 10 * 4).ToArray();
        var jpegImage = SKImage.FromPixelCopy(new SKImageInfo(12, 10, SKColorType.Rgba8888, SKAlphaType.Opaque), rgba);
        using var jpeg = jpegImage.Encode(SKEncodedImageFormat.Jpeg, 95);
        var image = ImageCodec.Decode(jpeg.ToArray(), "x.jpg");
        Assert.Equal((12, 10), (image.Width, image.Height));
        Assert.All(image.Pixels, p => Assert.InRange(p, 126, 130));
        Assert.Equal("", image.Prompt);
    }

    public static TheoryData<int> CutPoints => new() { 0, 4, 8, 20, 33, 60, -13, -12, -5, -1 };

    [Theory]
    [MemberData(nameof(CutPoints))]
    public void TruncatedPngIsRefused(int cut)
    {
        var png = ImageCodec.EncodePng(NoiseImage(16, 16, FullRecord()));
        var length = cut > 0 ? cut : cut == 0 ? png.Length / 2 : png.Length + cut;
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(png[..length], "cut.png"));
        Assert.Contains("cut.png", e.Message);
    }

    [Fact]
    public void FlippedByteFailsTheCrc()
    {
        var png = ImageCodec.EncodePng(NoiseImage(16, 16, FullRecord()));
        var (_, chunks) = PngChunks.Parse(png, null);
        var idat = chunks.First(c => c.Type == "IDAT");
        png[idat.DataOffset + idat.Length / 2] ^= 0x40;
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(png, "flip.png"));
        Assert.Contains("CRC", e.Reason);
    }

    [Fact]
    public void GarbageAndEmptyInputsAreRefused()
    {
        var garbage = new byte[4096];
        new Random(3).NextBytes(garbage);
        Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(garbage, "garbage.bin"));
        Assert.Throws<ImageFormatException>(() => ImageCodec.Decode([], "empty.png"));
        // A PNG signature followed by garbage.
        Assert.Throws<ImageFormatException>(() => ImageCodec.Decode([.. PngChunks.Signature, .. garbage], "sig.png"));
    }

    [Fact]
    public void AbsurdDimensionsAreRefusedBeforeDecoding()
    {
        // A decompression bomb: a valid header claiming 100000 x 100000 pixels over a tiny IDAT.
        var png = ImageCodec.EncodePng(NoiseImage(4, 4));
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 100_000);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 100_000);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32.Compute(png.AsSpan(12, 17)));
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(png, "bomb.png"));
        Assert.Contains("100000x100000", e.Reason);

        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(16), 10_000);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(20), 10_000);
        BinaryPrimitives.WriteUInt32BigEndian(png.AsSpan(29), Crc32.Compute(png.AsSpan(12, 17)));
        e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(png, "bomb.png"));
        Assert.Contains("limit", e.Reason);
    }

    [Fact]
    public void OversizedTextChunkIsRefused()
    {
        var png = ImageCodec.EncodePng(NoiseImage(4, 4));
        var huge = PngChunks.BuildTextChunk("comment", new string('x', ImageLimits.MaxTextBytes + 1));
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(PngChunks.InsertAfterHeader(png, [huge])));
        Assert.Contains("comment", e.Reason);
    }

    [Fact]
    public void CorruptRecordJsonIsReported()
    {
        var png = ImageCodec.EncodePng(NoiseImage(4, 4));
        var bad = PngChunks.BuildTextChunk(ImageCodec.RecordKeyword, "{not json", forceInternational: true);
        var (_, chunks) = PngChunks.Parse(png, null);
        // Replace our record chunk: drop the existing text chunks, put the bad one first.
        var ours = chunks.Where(c => c.Type is "tEXt" or "iTXt").ToList();
        var stripped = png[..ours[0].DataOffset].Take(ours[0].DataOffset - 8).Concat(png[(ours[^1].DataOffset + ours[^1].Length + 4)..]).ToArray();
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Decode(PngChunks.InsertAfterHeader(stripped, [bad]), "bad.png"));
        Assert.Contains(ImageCodec.RecordKeyword, e.Reason);
    }

    [Fact]
    public void MissingFileIsAnImageFormatExceptionNamingIt()
    {
        using var temp = new TempFolder("psd-imaging-");
        var path = temp.Combine("image.png");
        var e = Assert.Throws<ImageFormatException>(() => ImageCodec.Read(path));
        Assert.Equal(Path.GetFullPath(path), e.FilePath);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void TruncatedFileOnDiskIsNamed()
    {
        using var temp = new TempFolder("psd-imaging-");
        var path = temp.Combine("image.png");
        try
        {
            File.WriteAllBytes(path, ImageCodec.EncodePng(NoiseImage(8, 8))[..50]);
            var e = Assert.Throws<ImageFormatException>(() => SDImage.Load(path));
            Assert.Contains(Path.GetFullPath(path), e.Message);
            Assert.Contains("truncated", e.Reason);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RecordJsonRoundTripsAndRejectsUnknownPipelineKinds()
    {
        var record = FullRecord();
        Assert.Equal(record.ToJson(), GenerationRecord.FromJson(record.ToJson()).ToJson());
        Assert.Throws<System.Text.Json.JsonException>(() => GenerationRecord.FromJson("""{"pipeline_kind":"video"}"""));
        Assert.Equal(PipelineKind.Depth2Img, GenerationRecord.FromJson("""{"pipeline_kind":"depth2img"}""").PipelineKind);
        Assert.Equal(Encoding.UTF8.GetByteCount(record.ToJson()), Encoding.UTF8.GetBytes(record.ToJson()).Length);
    }
}
