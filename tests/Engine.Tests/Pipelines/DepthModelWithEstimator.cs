using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using PSStableDiffusion.Engine.Pipelines;
using PSStableDiffusion.Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Tests.Pipelines;

/// <summary>
/// The depth2img model with its estimator (tests/golden/depth2img_estimated): as a diffusers folder and as the ldm single
/// file that bundles depth_model.*, assembled from the golden depth2img model and the tiny DPT-Hybrid fixture.
/// </summary>
public sealed class DepthModelWithEstimator : IDisposable
{
    private readonly TempFolder _temp = new("psd-depth-estimated-");

    public DepthModelWithEstimator()
    {
        Root = _temp.Path;
        Folder = Path.Combine(Root, "model");
        CopyTree(Golden.Path("depth2img", "model"), Folder);
        File.Copy(Golden.Path("depth2img_estimated", "model_index.json"), Path.Combine(Folder, "model_index.json"), overwrite: true);
        CopyTree(Golden.Path("depth_estimator", "depth_estimator"), Path.Combine(Folder, "depth_estimator"));
        CopyTree(Golden.Path("depth_estimator", "feature_extractor"), Path.Combine(Folder, "feature_extractor"));

        // 512-depth-ema.ckpt's layout: the ldm keys plus depth_model.model.* (MiDaS names), with its YAML beside it.
        SingleFile = Path.Combine(Root, "depth-estimated.safetensors");
        using (var ldm = SafeTensorsFile.Open(Golden.Path("depth2img", "single_file.safetensors")))
        using (var midas = SafeTensorsFile.Open(Golden.Path("depth_estimator", "single_file_depth_model.safetensors")))
        {
            var tensors = ldm.Tensors.Keys.Select(k => (k, ldm.Read(k))).Concat(midas.Tensors.Keys.Select(k => (k, midas.Read(k)))).ToList();
            SafeTensorsWriter.Write(SingleFile, tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        File.Copy(Golden.Path("depth2img", "ldm_config.yaml"), Path.ChangeExtension(SingleFile, ".yaml"));
        FolderModel = DiffusersFolderLoader.Load(Folder, ComputeTarget.Cpu32);
        SingleFileModel = SingleFileModelLoader.Load(SingleFile, ComputeTarget.Cpu32);
    }

    public string Root { get; }
    public string Folder { get; }
    public string SingleFile { get; }
    public StableDiffusionModel FolderModel { get; }
    public StableDiffusionModel SingleFileModel { get; }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        foreach (var dir in Directory.GetDirectories(from)) CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
    }

    public void Dispose()
    {
        FolderModel.Dispose();
        SingleFileModel.Dispose();
        _temp.Dispose();
    }
}
