using PSStableDiffusion.Engine.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Strict loading of weights files (safetensors, or a pickled <c>torch.save</c> state dict such as diffusers'
/// <c>diffusion_pytorch_model.bin</c>, read by the restricted unpickler) into a <see cref="nn.Module"/>: every
/// parameter and persistent buffer must be
/// filled exactly once with a tensor of its shape, and every file key must map to one of them (or be ignored by the
/// key map). Everything is checked before anything is copied, so a failed load leaves the module untouched.
/// Values are copied straight from the file mapping into the existing tensors (converted to their dtype/device on
/// the fly), so no second copy of the weights is ever held.
/// </summary>
public static class StateDictLoader
{
    /// <summary>Loads <paramref name="file"/> into <paramref name="module"/>; see the class remarks.</summary>
    public static StateDictLoadResult Load(nn.Module module, ITensorFile file, Func<string, string?>? keyMap = null) =>
        Load(module, new[] { file }, keyMap);

    /// <summary>Opens, loads and closes the given files (a sharded checkpoint is several files).</summary>
    public static StateDictLoadResult Load(
        nn.Module module, IEnumerable<string> paths, Func<string, string?>? keyMap = null)
    {
        var files = new List<ITensorFile>();
        try
        {
            foreach (var path in paths) files.Add(OpenWeights(path));
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
    /// <exception cref="ModelLoadException">A key is missing, unexpected, given twice, or has the
    /// wrong shape.</exception>
    public static StateDictLoadResult Load(
        nn.Module module, IEnumerable<ITensorFile> files, Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var (plan, ignored) = Plan(module, files.ToList(), keyMap);
        foreach (var item in plan) ReadInto(item.File, item.SourceKey, item.Target);
        return new StateDictLoadResult(plan.Count, ignored);
    }

    /// <summary>Opens a weights file by its name, as diffusers does: <c>.bin</c> is a <c>torch.save</c> pickle (read by
    /// the restricted unpickler, no code runs), anything else safetensors.</summary>
    internal static ITensorFile OpenWeights(string path) =>
        path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)
            ? Checkpoints.TorchCheckpointFile.Open(path) : SafeTensorsFile.Open(path);

    private static void ReadInto(ITensorFile file, string key, Tensor target)
    {
        if (file is SafeTensorsFile safeTensors)
        {
            safeTensors.ReadInto(key, target); // converts on the fly, no intermediate tensor
            return;
        }
        using var noGrad = torch.no_grad();
        using var value = file.Read(key, target.dtype);
        target.copy_(value);
    }

    /// <summary>
    /// Gives <paramref name="module"/> its weights from <paramref name="paths"/> as new tensors of
    /// <paramref name="dtype"/> on <paramref name="device"/>, replacing its parameters instead of copying into them.
    /// Meant for a module built on the <c>meta</c> device (no storage, no random initialisation): each weight is read
    /// from the file once, straight into its final storage; on the CPU a weight whose file dtype is already
    /// <paramref name="dtype"/> is not copied at all but viewed through a copy-on-write mapping of the file
    /// (its pages are shared with the page cache). The keys are checked exactly as
    /// <see cref="Load(nn.Module, IEnumerable{ITensorFile}, Func{string, string?})"/>
    /// checks them, before anything is read. Parameters come out without gradients (inference).
    /// </summary>
    /// <exception cref="ModelLoadException">A key is missing, unexpected, given twice, or has the
    /// wrong shape.</exception>
    /// <exception cref="NotSupportedException">A parameter belongs to a module type whose parameters cannot be
    /// replaced.</exception>
    public static StateDictLoadResult Materialize(
        nn.Module module, IEnumerable<string> paths, ScalarType dtype, Device device,
        Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        var files = new List<ITensorFile>();
        try
        {
            foreach (var path in paths) files.Add(OpenWeights(path));
            var (plan, ignored) = Plan(module, files, keyMap);
            var owners = ModuleParameters.Owners(module);
            // Check every target can be replaced before reading anything.
            foreach (var item in plan) ModuleParameters.CheckReplaceable(owners, item.ModuleKey);

            var (moduleKeys, loaded) = ReadPlanned(plan, dtype, shareFileMemory: device.type == DeviceType.CPU);
            ModuleParameters.ReplaceAll(owners, moduleKeys, loaded, device);
            return new StateDictLoadResult(plan.Count, ignored);
        }
        finally
        {
            foreach (var file in files) file.Dispose();
        }
    }

    /// <summary>Reads every planned tensor as a new CPU tensor of <paramref name="dtype"/>, file by file, each the way
    /// its format reads fastest. On the CPU, safetensors weights already in <paramref name="dtype"/> are used straight
    /// from the file mapping (no copy). On failure no tensor is left allocated.</summary>
    private static (List<string> ModuleKeys, Tensor[] Tensors) ReadPlanned(
        List<PlanItem> plan, ScalarType dtype, bool shareFileMemory)
    {
        var moduleKeys = new List<string>(plan.Count);
        var tensors = new List<Tensor>(plan.Count);
        try
        {
            foreach (var group in plan.GroupBy(item => item.File))
            {
                var items = group.ToList();
                tensors.AddRange(group.Key.ReadMany(
                    items.Select(item => item.SourceKey).ToList(), dtype, shareFileMemory));
                moduleKeys.AddRange(items.Select(item => item.ModuleKey));
            }
        }
        catch
        {
            foreach (var tensor in tensors) tensor.Dispose();
            throw;
        }
        return (moduleKeys, tensors.ToArray());
    }

    private sealed record PlanItem(ITensorFile File, string SourceKey, string ModuleKey, Tensor Target);

    /// <summary>Matches file keys to module tensors; throws naming every problem before anything is read.</summary>
    private static (List<PlanItem> Plan, List<string> Ignored) Plan(nn.Module module, List<ITensorFile> fileList,
        Func<string, string?>? keyMap)
    {
        var targets = module.state_dict();
        var plan = new List<PlanItem>();
        var sources = new Dictionary<string, (ITensorFile File, string SourceKey)>(StringComparer.Ordinal);
        var ignored = new List<string>();
        var problems = new List<string>();

        foreach (var file in fileList)
        {
            foreach (var sourceKey in file.Keys.Order(StringComparer.Ordinal))
            {
                var shape = file.ShapeOf(sourceKey);
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
                    problems.Add(
                        $"duplicate key {named} in {file.Path}: '{moduleKey}' is " +
                        $"already given by '{first.SourceKey}' in {first.File.Path}");
                    continue;
                }
                sources.Add(moduleKey, (file, sourceKey));
                if (!target.shape.SequenceEqual(shape))
                {
                    problems.Add(
                        $"shape mismatch for key {named} in {file.Path}: file has " +
                        $"[{string.Join(", ", shape)}], module expects [{string.Join(", ", target.shape)}]");
                    continue;
                }
                plan.Add(new PlanItem(file, sourceKey, moduleKey, target));
            }
        }

        string fileNames = string.Join(", ", fileList.Select(f => f.Path));
        foreach (var moduleKey in targets.Keys.Where(k => !sources.ContainsKey(k)).OrderBy(
            k => k, StringComparer.Ordinal))
            problems.Add($"missing key '{moduleKey}': not found in {(fileList.Count == 0 ? "(no files)" : fileNames)}");

        ModelLoadException.ThrowIfAny(problems, $"Cannot load {fileNames} into {module.GetType().Name}");
        return (plan, ignored);
    }
}
