using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Strict loading of safetensors weights into a <see cref="nn.Module"/>: every parameter and persistent buffer must be
/// filled exactly once with a tensor of its shape, and every file key must map to one of them (or be ignored by the
/// key map). Everything is checked before anything is copied, so a failed load leaves the module untouched.
/// Values are copied straight from the file mapping into the existing tensors (converted to their dtype/device on
/// the fly), so no second copy of the weights is ever held.
/// </summary>
public static class StateDictLoader
{
    /// <summary>Loads <paramref name="file"/> into <paramref name="module"/>; see the class remarks.</summary>
    public static StateDictLoadResult Load(nn.Module module, SafeTensorsFile file, Func<string, string?>? keyMap = null) =>
        Load(module, new[] { file }, keyMap);

    /// <summary>Opens, loads and closes the given files (a sharded checkpoint is several files).</summary>
    public static StateDictLoadResult Load(nn.Module module, IEnumerable<string> paths, Func<string, string?>? keyMap = null)
    {
        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (var path in paths) files.Add(SafeTensorsFile.Open(path));
            return Load(module, files, keyMap);
        }
        finally
        {
            foreach (var file in files) file.Dispose();
        }
    }

    /// <summary>
    /// Loads weights from <paramref name="files"/> into <paramref name="module"/>.
    /// <paramref name="keyMap"/> turns a file key into a module key, or returns null to ignore that key;
    /// without it keys must match the module's state-dict names exactly.
    /// </summary>
    /// <exception cref="ModelLoadException">A key is missing, unexpected, given twice, or has the wrong shape.</exception>
    public static StateDictLoadResult Load(nn.Module module, IEnumerable<SafeTensorsFile> files, Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var (plan, ignored) = Plan(module, files.ToList(), keyMap);
        foreach (var item in plan) item.File.ReadInto(item.SourceKey, item.Target);
        return new StateDictLoadResult(plan.Count, ignored);
    }

    /// <summary>
    /// Gives <paramref name="module"/> its weights from <paramref name="paths"/> as new tensors of
    /// <paramref name="dtype"/> on <paramref name="device"/>, replacing its parameters instead of copying into them.
    /// Meant for a module built on the <c>meta</c> device (no storage, no random initialisation): each weight is read
    /// from the file once, straight into its final storage; on the CPU a weight whose file dtype is already
    /// <paramref name="dtype"/> is not copied at all but viewed through a copy-on-write mapping of the file
    /// (its pages are shared with the page cache). The keys are checked exactly as <see cref="Load(nn.Module, IEnumerable{SafeTensorsFile}, Func{string, string?})"/>
    /// checks them, before anything is read. Parameters come out without gradients (inference).
    /// </summary>
    /// <exception cref="ModelLoadException">A key is missing, unexpected, given twice, or has the wrong shape.</exception>
    /// <exception cref="NotSupportedException">A parameter belongs to a module type whose parameters cannot be replaced.</exception>
    public static StateDictLoadResult Materialize(nn.Module module, IEnumerable<string> paths, ScalarType dtype, Device device,
        Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (var path in paths) files.Add(SafeTensorsFile.Open(path));
            var (plan, ignored) = Plan(module, files, keyMap);
            var owners = ModuleParameters.Owners(module);
            // Check every target can be replaced before reading anything.
            foreach (var item in plan) ModuleParameters.CheckReplaceable(owners, item.ModuleKey);

            // On the CPU, weights already in the wanted dtype are used straight from the file mapping (no copy).
            var loaded = SafeTensorsBulkReader.ReadAll(
                plan.Select(item => new SafeTensorsBulkReader.Request(item.File.Path, item.File.Info(item.SourceKey), dtype)).ToList(),
                mapWhenPossible: device.type == DeviceType.CPU);
            ModuleParameters.ReplaceAll(owners, plan.Select(item => item.ModuleKey).ToList(), loaded, device);
            return new StateDictLoadResult(plan.Count, ignored);
        }
        finally
        {
            foreach (var file in files) file.Dispose();
        }
    }

    private sealed record PlanItem(SafeTensorsFile File, string SourceKey, string ModuleKey, Tensor Target);

    /// <summary>Matches file keys to module tensors; throws naming every problem before anything is read.</summary>
    private static (List<PlanItem> Plan, List<string> Ignored) Plan(nn.Module module, List<SafeTensorsFile> fileList,
        Func<string, string?>? keyMap)
    {
        var targets = module.state_dict();
        var plan = new List<PlanItem>();
        var sources = new Dictionary<string, (SafeTensorsFile File, string SourceKey)>(StringComparer.Ordinal);
        var ignored = new List<string>();
        var problems = new List<string>();

        foreach (var file in fileList)
        {
            foreach (var (sourceKey, info) in file.Tensors.OrderBy(t => t.Key, StringComparer.Ordinal))
            {
                string? moduleKey = keyMap is null ? sourceKey : keyMap(sourceKey);
                if (moduleKey is null)
                {
                    ignored.Add(sourceKey);
                    continue;
                }
                string named = moduleKey == sourceKey ? $"'{sourceKey}'" : $"'{sourceKey}' (as '{moduleKey}')";
                if (!targets.TryGetValue(moduleKey, out var target))
                {
                    problems.Add($"unexpected key {named} in {file.Path}: the module has no such parameter or buffer");
                    continue;
                }
                if (sources.TryGetValue(moduleKey, out var first))
                {
                    problems.Add($"duplicate key {named} in {file.Path}: '{moduleKey}' is already given by '{first.SourceKey}' in {first.File.Path}");
                    continue;
                }
                sources.Add(moduleKey, (file, sourceKey));
                if (!target.shape.SequenceEqual(info.Shape))
                {
                    problems.Add($"shape mismatch for key {named} in {file.Path}: file has [{string.Join(", ", info.Shape)}], module expects [{string.Join(", ", target.shape)}]");
                    continue;
                }
                plan.Add(new PlanItem(file, sourceKey, moduleKey, target));
            }
        }

        string fileNames = string.Join(", ", fileList.Select(f => f.Path));
        foreach (var moduleKey in targets.Keys.Where(k => !sources.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal))
            problems.Add($"missing key '{moduleKey}': not found in {(fileList.Count == 0 ? "(no files)" : fileNames)}");

        ModelLoadException.ThrowIfAny(problems, $"Cannot load {fileNames} into {module.GetType().Name}");
        return (plan, ignored);
    }
}
