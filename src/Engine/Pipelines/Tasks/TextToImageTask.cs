using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Pipelines.Tasks;

/// <summary>Text-to-image: latents from pure noise at the requested (or the model's default) size.</summary>
internal sealed class TextToImageTask : PipelineTask
{
    private static readonly TextToImageInput TextOnly = new();

    public override PipelineKind Kind => PipelineKind.Txt2Img;
    public override TaskInput Input => TextOnly;

    public override void Prepare(PipelineRun run)
    {
        var model = run.Model;
        int multiple = model.VaeScaleFactor;
        int width = run.Request.Width ?? model.DefaultSize, height = run.Request.Height ?? model.DefaultSize;
        RequestRules.CheckMultiple("Width", width, multiple);
        RequestRules.CheckMultiple("Height", height, multiple);
        (run.Width, run.Height) = (width, height);
        (run.LatentWidth, run.LatentHeight) = (width / multiple, height / multiple);
    }

    public override Tensor PrepareLatents(PipelineRun run) => run.PureNoiseLatents();                    // [N, 4, h, w]
}
