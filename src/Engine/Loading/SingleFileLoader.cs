using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.SingleFile;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.Loading;

/// <summary>
/// Strict loading of one component of a single-file checkpoint into its diffusers-layout module, with the
/// conversions the layouts need (1×1 convolution → Linear, fused q/k/v → three projections). Like
/// <see cref="StateDictLoader"/>, every module tensor must be filled exactly once with the right shape and every file
/// key must be known; all checks run before anything is read, so a failed load leaves the module untouched.
/// </summary>
public static class SingleFileLoader
{
    /// <summary>
    /// Gives <paramref name="module"/>, built on the <c>meta</c> device (no storage, no random initialisation), the
    /// weights of <paramref name="component"/> from <paramref name="file"/> as new tensors of <paramref name="dtype"/>
    /// on <paramref name="device"/>, as <see cref="StateDictLoader.Materialize"/> does for a diffusers folder: each
    /// checkpoint tensor is read once (on the CPU, one already in <paramref name="dtype"/> is viewed through a
    /// copy-on-write mapping of a safetensors file, not copied), and the converted module tensors are views of it
    /// (a reshape, or a row block of a fused q/k/v tensor). Parameters come out without gradients.
    /// </summary>
    /// <exception cref="UnknownCheckpointKeyException">The file has keys the map does not know.</exception>
    /// <exception cref="ModelLoadException">A module tensor is missing, or a shape differs.</exception>
    /// <exception cref="NotSupportedException">A parameter belongs to a module type whose parameters cannot be
    /// replaced.</exception>
    /// <remarks>
    /// <paramref name="file"/> is safetensors or a torch checkpoint; values are converted to <paramref name="dtype"/>
    /// on read, so an fp16 file loads into a float32 (or bfloat16) module and the other way round.
    /// </remarks>
    public static StateDictLoadResult Materialize(
        nn.Module module, ITensorFile file, LdmKeyMap map, SingleFileComponent component,
        ScalarType dtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(map);
        var (plan, ignored) = Plan(module, file, map, component);
        var owners = ModuleParameters.Owners(module);
        foreach (var mapping in plan) ModuleParameters.CheckReplaceable(owners, mapping.ModuleKey);

        using var noGrad = torch.no_grad();
        var groups = plan.GroupBy(m => m.SourceKey, StringComparer.Ordinal).ToList();
        var read = file.ReadMany(
            groups.Select(g => g.Key).ToList(), dtype, shareFileMemory: device.type == DeviceType.CPU);
        var keys = new List<string>(plan.Count);
        var values = new List<Tensor?>(plan.Count);
        try
        {
            for (int i = 0; i < groups.Count; i++)
            {
                foreach (var mapping in groups[i])
                {
                    keys.Add(mapping.ModuleKey);
                    values.Add(mapping.ToModule(read[i])); // a view: the read tensor's storage lives on in it
                }
            }
        }
        catch
        {
            foreach (var value in values) value?.Dispose();
            throw;
        }
        finally
        {
            foreach (var tensor in read) tensor.Dispose();
        }
        ModuleParameters.ReplaceAll(owners, keys, values.ToArray(), device);
        return new StateDictLoadResult(plan.Count, ignored);
    }

    /// <summary>Opens the plan's checkpoint and materializes one component (see the other overload).</summary>
    public static StateDictLoadResult Materialize(
        nn.Module module, SingleFileModelPlan plan, SingleFileComponent component,
        ScalarType dtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(plan);
        using var file = CheckpointFiles.Open(plan.CheckpointPath);
        return Materialize(module, file, plan.KeyMap, component, dtype, device);
    }

    /// <summary>The mappings that fill <paramref name="component"/>, checked against the module and the file; throws
    /// naming every problem before anything is read.</summary>
    private static (List<LdmKeyMapping> Plan, List<string> Ignored) Plan(
        nn.Module module, ITensorFile file, LdmKeyMap map,
        SingleFileComponent component)
    {
        var unknown = file.Keys.Where(k => !map.IsKnown(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0) throw new UnknownCheckpointKeyException(file.Path, unknown);

        var targets = module.state_dict();
        var plan = new List<LdmKeyMapping>();
        var filled = new HashSet<string>(StringComparer.Ordinal);
        var ignored = new List<string>();
        var problems = new List<string>();
        foreach (var sourceKey in file.Keys.Order(StringComparer.Ordinal))
        {
            var mappings = map.Resolve(sourceKey, file.Path).Where(m => m.Component == component).ToList();
            if (mappings.Count == 0)
            {
                ignored.Add(sourceKey);
                continue;
            }
            var fileShape = file.ShapeOf(sourceKey);
            foreach (var mapping in mappings)
            {
                string named = $"'{sourceKey}' (as '{mapping.ModuleKey}')";
                if (!targets.TryGetValue(mapping.ModuleKey, out var target))
                    problems.Add(
                        $"unexpected key {named} in {file.Path}: the " +
                        $"{module.GetType().Name} has no such parameter or buffer");
                else if (!fileShape.SequenceEqual(mapping.SourceShape))
                    problems.Add(
                        $"shape mismatch for key '{sourceKey}' in {file.Path}: file has " +
                        $"[{string.Join(", ", fileShape)}], the architecture expects " +
                        $"[{string.Join(", ", mapping.SourceShape)}]");
                else if (!target.shape.SequenceEqual(mapping.ModuleShape))
                    problems.Add(
                        $"shape mismatch for key {named} in {file.Path}: the map gives " +
                        $"[{string.Join(", ", mapping.ModuleShape)}], the module expects " +
                        $"[{string.Join(", ", target.shape)}]");
                else
                {
                    filled.Add(mapping.ModuleKey);
                    plan.Add(mapping);
                }
            }
        }
        foreach (var key in targets.Keys.Where(k => !filled.Contains(k)).Order(StringComparer.Ordinal))
        {
            var origin = map.ModuleKeys(component).TryGetValue(key, out var m)
                ? $"'{m.SourceKey}'" : "no checkpoint key";
            problems.Add($"missing key '{key}' (from {origin}): not found in {file.Path}");
        }
        ModelLoadException.ThrowIfAny(
            problems, $"Cannot load the {component} of {file.Path} into {module.GetType().Name}");
        return (plan, ignored);
    }
}
