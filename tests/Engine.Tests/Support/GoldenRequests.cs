using PSStableDiffusion.Engine.Imaging;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Pipelines.Tasks;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Support;

/// <summary>The golden cases' calls (case.json <c>call</c>) as engine requests: the one builder every test uses.</summary>
internal static class GoldenRequests
{
    /// <summary>The task the case's diffusers pipeline ran.</summary>
    public static PipelineKind KindOf(string caseName) => caseName switch
    {
        _ when caseName.StartsWith("txt2img", StringComparison.Ordinal) => PipelineKind.Txt2Img,
        "img2img" => PipelineKind.Img2Img,
        "inpaint" => PipelineKind.Inpaint,
        "depth2img" => PipelineKind.Depth2Img,
        "upscale_x4" => PipelineKind.Upscale,
        _ => throw new ArgumentOutOfRangeException(nameof(caseName), caseName, null),
    };

    /// <summary>The case.json call as a request; the image tasks read their inputs from the case's PNG files.</summary>
    public static GenerationRequest For(GoldenCase golden) =>
        KindOf(golden.Name) == PipelineKind.Txt2Img ? TextToImage(golden) : WithImage(golden);

    private static GenerationRequest TextToImage(GoldenCase golden)
    {
        var call = golden.Json.RootElement.GetProperty("call");
        return new GenerationRequest
        {
            Prompt = call.GetProperty("prompt").GetString()!,
            NegativePrompt = call.GetProperty("negative_prompt").GetString() ?? "",
            Steps = call.GetProperty("num_inference_steps").GetInt32(),
            GuidanceScale = call.GetProperty("guidance_scale").GetDouble(),
            Width = call.GetProperty("width").GetInt32(),
            Height = call.GetProperty("height").GetInt32(),
            Seed = golden.Json.RootElement.GetProperty("seed").GetInt64(),
        };
    }

    private static GenerationRequest WithImage(GoldenCase golden)
    {
        var root = golden.Json.RootElement;
        var call = root.GetProperty("call");
        double? Optional(string name) => call.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number ? v.GetDouble() : null;
        var folder = golden.Folder;
        string maskPath = Path.Combine(folder, "input_mask.png"), depthPath = Path.Combine(folder, "input_depth.png");
        return new GenerationRequest
        {
            Prompt = call.GetProperty("prompt").GetString()!,
            NegativePrompt = call.GetProperty("negative_prompt").GetString() ?? "",
            Steps = call.GetProperty("num_inference_steps").GetInt32(),
            GuidanceScale = call.GetProperty("guidance_scale").GetDouble(),
            Eta = Optional("eta"),
            Seed = root.GetProperty("seed").GetInt64(),
            Input = InputFor(golden.Name, SDImage.Load(Path.Combine(folder, "input_image.png")).ToTensor(),
                Optional("strength") ?? 0.8, (int)(Optional("noise_level") ?? 20), maskPath, depthPath),
        };
    }

    /// <summary>The case's task input: its image, and the mask or depth map its folder holds.</summary>
    private static TaskInput InputFor(string caseName, Tensor image, double strength, int noiseLevel, string maskPath, string depthPath) =>
        KindOf(caseName) switch
        {
            PipelineKind.Img2Img => new ImageToImageInput { Image = image, Strength = strength },
            PipelineKind.Inpaint => new InpaintInput
            {
                Image = image, Strength = strength, Mask = GrayImage.Load(maskPath).ToTensor(normalize: true), Composite = false,
            },
            PipelineKind.Depth2Img => new DepthToImageInput { Image = image, Strength = strength, DepthMap = GrayImage.Load(depthPath).ToTensor() },
            PipelineKind.Upscale => new UpscaleInput { Image = image, NoiseLevel = noiseLevel },
            var kind => throw new ArgumentOutOfRangeException(nameof(caseName), kind, null),
        };
}
