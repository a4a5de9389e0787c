using System.Text.Json;
using PSStableDiffusion.Engine.Hub;
using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Models.Unet;
using PSStableDiffusion.Engine.Models.Vae;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Engine.SingleFile;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine;

/// <summary>
/// Describes models on disk without loading them: diffusers folders from their <c>config.json</c> files, single files
/// through <see cref="SingleFilePlanner"/> (tensor shapes only), and the hub cache's <c>models--*</c> snapshots.
/// </summary>
public static class ModelCatalog
{
    public const string FolderSource = "folder";
    public const string SingleFileSource = "single-file";
    public const string HubSource = "hub";

    /// <summary>
    /// Describes the diffusers folder or checkpoint file at <paramref name="path"/>. A model that cannot be read is
    /// returned with <see cref="ModelDescription.Error"/> set rather than thrown.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Nothing at <paramref name="path"/>, or a folder without
    /// model_index.json.</exception>
    /// <exception cref="NotSupportedException">A file that is not a checkpoint (.safetensors, .ckpt,
    /// .pt, .pth).</exception>
    public static ModelDescription Describe(string path)
    {
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        if (Directory.Exists(full))
        {
            if (!File.Exists(System.IO.Path.Combine(full, "model_index.json")))
                throw new DirectoryNotFoundException(
                    $"'{full}' is not a diffusers model folder: it has no model_index.json.");
            return DescribeFolder(full);
        }
        if (File.Exists(full))
        {
            if (!CheckpointFiles.HasCheckpointExtension(full))
                throw new NotSupportedException($"'{full}' is not a checkpoint (.safetensors, .ckpt, .pt or .pth).");
            return DescribeSingleFile(full);
        }
        throw new DirectoryNotFoundException($"No model folder or checkpoint file at '{full}'.");
    }

    /// <summary>
    /// The models at or directly inside <paramref name="path"/>: the model itself when it is a diffusers folder or a
    /// checkpoint; the snapshots of a <c>models--org--name</c> folder; every repository of a hub
    /// cache folder; otherwise
    /// the diffusers folders and checkpoint files directly inside it (not recursive).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">Nothing at <paramref name="path"/>.</exception>
    /// <exception cref="NotSupportedException">A file that is not a checkpoint.</exception>
    public static IReadOnlyList<ModelDescription> Find(string path)
    {
        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        if (File.Exists(full) || File.Exists(System.IO.Path.Combine(full, "model_index.json")))
            return new[] { Describe(full) };
        if (!Directory.Exists(full))
            throw new DirectoryNotFoundException($"No model folder or checkpoint file at '{full}'.");
        var folder = new DirectoryInfo(full);
        if (HubCache.FromRepoFolder(full) is { } repository) return DescribeRepository(repository).ToList();
        if (HubCache.Repositories(full).Any()) return ListHubCache(full);
        var found = new List<ModelDescription>();
        foreach (var child in folder.EnumerateFileSystemInfos().OrderBy(c => c.Name, StringComparer.OrdinalIgnoreCase))
        {
            if (child is DirectoryInfo directory
                && File.Exists(System.IO.Path.Combine(directory.FullName, "model_index.json")))
                found.Add(DescribeFolder(directory.FullName));
            else if (child is FileInfo file && CheckpointFiles.HasCheckpointExtension(file.Name))
                found.Add(DescribeSingleFile(file.FullName));
        }
        return found;
    }

    /// <summary>
    /// The diffusers snapshots in the hub cache (<paramref name="cacheRoot"/>, else the one HF_HUB_CACHE / HF_HOME
    /// name, as Python's huggingface_hub finds it), one per repository and commit, ordered by id. Repositories that are
    /// not diffusers pipelines (no model_index.json) are left out. An absent cache is an empty list.
    /// </summary>
    public static IReadOnlyList<ModelDescription> ListHubCache(string? cacheRoot = null)
    {
        cacheRoot ??= HubOptions.ResolveCacheRoot(Environment.GetEnvironmentVariable);
        return HubCache.Repositories(cacheRoot)
            .SelectMany(DescribeRepository)
            .OrderBy(d => d.Name, StringComparer.OrdinalIgnoreCase)
            .ThenByDescending(d => d.Refs.Contains("main"))
            .ThenBy(d => d.Commit, StringComparer.Ordinal)
            .ToList();
    }

    private static IEnumerable<ModelDescription> DescribeRepository(HubCache repository) =>
        repository.SnapshotFolders(marker: "model_index.json").Select(DescribeFolder);

    private static ModelDescription DescribeFolder(string folder)
    {
        var hub = HubCache.FromSnapshotFolder(folder);
        var description = new ModelDescription
        {
            Name = hub?.Repository.RepoId ?? System.IO.Path.GetFileName(folder),
            Path = folder,
            Source = hub is null ? FolderSource : HubSource,
            Commit = hub?.Commit,
            Refs = hub is var (repository, commit) ? repository.RefsTo(commit) : Array.Empty<string>(),
            SizeOnDisk = FolderSize(folder),
        };
        try
        {
            var unet = UNet2DConditionConfig.FromFile(System.IO.Path.Combine(folder, "unet", "config.json"));
            var vae = AutoencoderKLConfig.FromFile(System.IO.Path.Combine(folder, "vae", "config.json"));
            var schedulerPath = System.IO.Path.Combine(folder, "scheduler", "scheduler_config.json");
            var scheduler = File.Exists(schedulerPath) ? SchedulerConfig.Load(schedulerPath) : null;
            return description with
            {
                Kind = ModelKinds.FromUnetInChannels(unet.InChannels, folder).DisplayName(),
                HasDepthEstimator = ModelKinds.FromUnetInChannels(unet.InChannels, folder) == ModelKind.Depth
                    ? Models.Dpt.DepthEstimator.Locate(folder) is not null : null,
                PredictionType = scheduler?.PredictionType ?? "epsilon",
                DefaultSize = (unet.SampleSize ?? 64) * vae.DownscaleFactor,
                DType = FolderWeightsDType(System.IO.Path.Combine(folder, "unet")),
            };
        }
        catch (Exception e) when (IsDescriptionFailure(e))
        {
            return description with { Error = e.Message };
        }
    }

    private static ModelDescription DescribeSingleFile(string path)
    {
        var description = new ModelDescription
        {
            Name = System.IO.Path.GetFileName(path),
            Path = path,
            Source = SingleFileSource,
            SizeOnDisk = new FileInfo(path).Length,
        };
        try
        {
            using var file = CheckpointFiles.Open(path);
            var plan = SingleFilePlanner.Plan(file);
            return description with
            {
                Kind = plan.Kind.DisplayName(),
                HasDepthEstimator = plan.Kind == ModelKind.Depth ? SingleFile.DptKeyMap.HasDepthModel(file) : null,
                PredictionType = plan.PredictionType,
                DefaultSize = plan.DefaultSize,
                DType = DTypeName(file.DTypeOf(LdmKeyMap.UNetPrefix + "input_blocks.0.0.weight")),
                ConfigPath = plan.ConfigPath,
                Notes = plan.Notes,
            };
        }
        catch (Exception e) when (IsDescriptionFailure(e))
        {
            return description with { Error = e.Message };
        }
    }

    /// <summary>Failures that mean "this is not a model we can describe", as opposed to bugs.</summary>
    private static bool IsDescriptionFailure(Exception e) =>
        e is IOException or InvalidDataException or NotSupportedException or FormatException or JsonException
            or KeyNotFoundException or SingleFileCheckpointException or ArgumentException
            or UnauthorizedAccessException;

    /// <summary>The dtype of most floating tensors in the UNet's safetensors (the plain weights when there are
    /// several sets).</summary>
    private static string? FolderWeightsDType(string unetFolder)
    {
        var files = Directory.EnumerateFiles(unetFolder, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0) return null;
        var chosen = files.FirstOrDefault(
            f => Loading.WeightFileSelection.Describe(System.IO.Path.GetFileName(f)) is { Variant: null }) ?? files[0];
        using var file = SafeTensorsFile.Open(chosen);
        return file.Tensors.Values
            .Select(t => SafeTensorsFile.ToScalarType(t.DType))
            .Where(IsFloating)
            .GroupBy(t => t)
            .OrderByDescending(g => g.Count())
            .Select(g => DTypeName(g.Key))
            .FirstOrDefault();
    }

    private static bool IsFloating(ScalarType type) =>
        type is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    /// <summary>PyTorch's name of a dtype (float32, float16, bfloat16, ...).</summary>
    public static string DTypeName(ScalarType type) => type switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float64 => "float64",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>Bytes of every file under <paramref name="folder"/>, following links to their targets (hub snapshots
    /// link to blobs).</summary>
    private static long FolderSize(string folder)
    {
        long total = 0;
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var info = new FileInfo(path);
            try
            {
                if (info.LinkTarget is not null)
                    info = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
                if (info.Exists) total += info.Length;
            }
            catch (IOException)
            {
                // A dangling or unreadable link adds nothing.
            }
        }
        return total;
    }
}
