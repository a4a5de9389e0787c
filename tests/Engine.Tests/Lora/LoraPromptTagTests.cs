using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Lora;
using PSStableDiffusion.Engine.Pipelines;
using Xunit;

namespace PSStableDiffusion.Engine.Tests.Lora;

/// <summary>AUTOMATIC1111's &lt;lora:…&gt; tags (extra-network arguments as its extra_networks.parse_prompt and Lora's
/// activate read them: te from the 2nd positional or te=, unet from the 3rd or unet=, defaulting to te) and the
/// "Lora hashes" field of its parameters text.</summary>
public class LoraPromptTagTests
{
    [Theory]
    [InlineData("a cat <lora:style:0.8>", "a cat ", "style", 0.8, 0.8)]
    [InlineData("<lora:style> a cat", " a cat", "style", 1.0, 1.0)]
    [InlineData("a cat <lora:style:te=0.5:unet=0.8>", "a cat ", "style", 0.5, 0.8)]
    [InlineData("a cat <lora:style:0.5:0.8>", "a cat ", "style", 0.5, 0.8)]
    [InlineData("a cat <LORA:style:unet=0.3>", "a cat ", "style", 1.0, 0.3)]
    [InlineData("a <lora:style:0.7:te=0.2> cat", "a  cat", "style", 0.2, 0.2)] // unet defaults to the te multiplier as read
    public void TagsAreReadAndRemoved(string prompt, string cleaned, string name, double te, double unet)
    {
        var (text, tags) = LoraPromptTags.Extract(prompt);
        Assert.Equal(cleaned, text);
        var tag = Assert.Single(tags);
        Assert.Equal((name, te, unet), (tag.Name, tag.TextEncoderMultiplier, tag.UnetMultiplier));
    }

    [Fact]
    public void OtherExtraNetworksStayAndSeveralLorasAreKeptInOrder()
    {
        var (text, tags) = LoraPromptTags.Extract("x <hypernet:h:1> <lora:a:0.1> y <lora:b>");
        Assert.Equal("x <hypernet:h:1>  y ", text);
        Assert.Equal(["a", "b"], tags.Select(t => t.Name));
    }

    [Theory]
    [InlineData("<lora:style:lots>")]
    [InlineData("<lora:style:te=NaN>")]
    public void AMultiplierThatIsNoNumberIsRefused(string prompt)
    {
        var error = Assert.Throws<PSStableDiffusion.Engine.Text.PromptSyntaxException>(() => LoraPromptTags.Extract(prompt));
        Assert.Contains(prompt, error.Message);
    }

    [Fact]
    public void TheEngineRefusesATagItWasGivenNoFileFor()
    {
        var request = new GenerationRequest { Prompt = "a cat <lora:style:0.8>" };
        var error = Assert.Throws<ArgumentException>(() => LoraPromptTags.WithoutTags(request));
        Assert.Contains("<lora:style:0.8>", error.Message);
        var given = request with { Loras = [new LoraRequest("/x/style.safetensors", 0.8, 0.8) { FromPrompt = true }] };
        Assert.Equal("a cat ", LoraPromptTags.WithoutTags(given).Prompt);
    }

    [Fact]
    public void ANegativePromptsTagsAreFoundWithoutBeingRead()
    {
        Assert.Equal(["<lora:style:lots>", "<LORA:ink>"], LoraPromptTags.TagsIn("blurry <lora:style:lots>, <hypernet:x:1> <LORA:ink>"));
        Assert.Empty(LoraPromptTags.TagsIn("blurry, lowres"));
        Assert.Empty(LoraPromptTags.TagsIn(null));
    }

    [Fact]
    public void LoraHashesRoundTripThroughTheParametersText()
    {
        var record = new GenerationRecord
        {
            Prompt = "a cat <lora:style:0.8>", Steps = 20, Scheduler = "DDIMScheduler", GuidanceScale = 7.5, Seed = 1, Width = 64, Height = 64,
            Loras = [new LoraUse("style", "0123456789ab", "/x/style.safetensors", 0.8, 0.8, true), new LoraUse("ink", "ba9876543210")],
        };
        var text = A1111Parameters.Format(record);
        Assert.Contains("Lora hashes: \"style: 0123456789ab, ink: ba9876543210\"", text);
        var parsed = A1111Parameters.Parse(text);
        Assert.Equal([("style", "0123456789ab"), ("ink", "ba9876543210")], parsed.Loras!.Select(l => (l.Name, l.Hash)));
        // 'ink' was a parameter: the web UI applies LoRAs through prompt tags only, so the text gives it one at the
        // prompt's end, and a replay of the text finds both LoRAs in the prompt (each once).
        Assert.Equal(record.Prompt + " <lora:ink:1>", parsed.Prompt);
        Assert.Equal([true, true], parsed.Loras!.Select(l => l.FromPrompt));
        // A text without that tag (written before it was added): 'ink', named by no tag, is replayed as a parameter.
        var untagged = A1111Parameters.Parse(text.Replace(" <lora:ink:1>", "", StringComparison.Ordinal));
        Assert.Equal(record.Prompt, untagged.Prompt);
        Assert.Equal([true, false], untagged.Loras!.Select(l => l.FromPrompt));
    }
}
