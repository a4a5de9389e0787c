using PSStableDiffusion.Engine.IO;
using PSStableDiffusion.Engine.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace PSStableDiffusion.Engine.SingleFile;

/// <summary>
/// Strict loading of one component of a single-file checkpoint into its diffusers-layout module, with the
/// conversions the layouts need (1×1 convolution → Linear, fused q/k/v → three projections). Like
/// <see cref="StateDictLoader"/>, every module tensor must be filled exactly once with the right shape and every file
/// key must be known; all checks run before anything is copied, so a failed load leaves the module untouched.
/// </summary>
public static class SingleFileLoader
{
    private const int ProblemsInMessage = 8;

    /// <summary>Loads <paramref name="component"/> from <paramref name="file"/> into <paramref name="module"/>.</summary>
    /// <exception cref="UnknownCheckpointKeyException">The file has keys the map does not know.</exception>
    /// <exception cref="ModelLoadException">A module tensor is missing, or a shape differs.</exception>
    /// <remarks>
    /// <paramref name="file"/> is safetensors or a torch checkpoint; values are converted to each module tensor's dtype
    /// on read, so an fp16 file loads into a float32 (or bfloat16) module and the other way round.
    /// </remarks>
    public static StateDictLoadResult Load(nn.Module module, ITensorFile file, LdmKeyMap map, SingleFileComponent component)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(map);
        var unknown = file.Keys.Where(k => !map.IsKnown(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0) throw new UnknownCheckpointKeyException(file.Path, unknown);

        var targets = module.state_dict();
        var plan = new List<(LdmKeyMapping Mapping, Tensor Target)>();
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
            foreach (var mapping in mappings)
            {
                string named = $"'{sourceKey}' (as '{mapping.ModuleKey}')";
                if (!targets.TryGetValue(mapping.ModuleKey, out var target))
                {
                    problems.Add($"unexpected key {named} in {file.Path}: the {module.GetType().Name} has no such parameter or buffer");
                    continue;
                }
                var fileShape = file.ShapeOf(sourceKey);
                if (!fileShape.SequenceEqual(mapping.SourceShape))
                {
                    problems.Add($"shape mismatch for key '{sourceKey}' in {file.Path}: file has [{string.Join(", ", fileShape)}], the architecture expects [{string.Join(", ", mapping.SourceShape)}]");
                    continue;
                }
                if (!target.shape.SequenceEqual(mapping.ModuleShape))
                {
                    problems.Add($"shape mismatch for key {named} in {file.Path}: the map gives [{string.Join(", ", mapping.ModuleShape)}], the module expects [{string.Join(", ", target.shape)}]");
                    continue;
                }
                filled.Add(mapping.ModuleKey);
                plan.Add((mapping, target));
            }
        }
        foreach (var key in targets.Keys.Where(k => !filled.Contains(k)).Order(StringComparer.Ordinal))
        {
            var origin = map.ModuleKeys(component).TryGetValue(key, out var m) ? $"'{m.SourceKey}'" : "no checkpoint key";
            problems.Add($"missing key '{key}' (from {origin}): not found in {file.Path}");
        }
        if (problems.Count > 0)
        {
            var shown = string.Join(Environment.NewLine, problems.Take(ProblemsInMessage).Select(p => "  " + p));
            string more = problems.Count > ProblemsInMessage ? $"{Environment.NewLine}  ... and {problems.Count - ProblemsInMessage} more" : "";
            throw new ModelLoadException(
                $"Cannot load the {component} of {file.Path} into {module.GetType().Name}: {problems.Count} problem(s){Environment.NewLine}{shown}{more}", problems);
        }

        using var noGrad = torch.no_grad();
        foreach (var group in plan.GroupBy(p => p.Mapping.SourceKey))
        {
            var first = group.First().Mapping;
            if (first.Conversion == LdmConversion.Copy)
            {
                ReadInto(file, first.SourceKey, group.Single().Target);
            }
            else if (first.Conversion == LdmConversion.Conv1x1ToLinear)
            {
                // [C, C] seen as [C, C, 1, 1]: the file's bytes land in the parameter with no intermediate tensor.
                using var asConv = group.Single().Target.view(first.SourceShape);
                ReadInto(file, first.SourceKey, asConv);
            }
            else
            {
                // One read of the fused tensor, then each row block into its projection.
                using var scope = NewDisposeScope();
                var fused = file.Read(first.SourceKey);
                foreach (var (mapping, target) in group) target.copy_(mapping.ToModule(fused));
            }
        }
        return new StateDictLoadResult(plan.Count, ignored);
    }

    /// <summary>Opens the plan's checkpoint and loads one component.</summary>
    public static StateDictLoadResult Load(nn.Module module, SingleFileModelPlan plan, SingleFileComponent component)
    {
        ArgumentNullException.ThrowIfNull(plan);
        using var file = CheckpointFiles.Open(plan.CheckpointPath);
        return Load(module, file, plan.KeyMap, component);
    }

    /// <summary>
    /// Copies one tensor into <paramref name="destination"/>, converting dtype: straight from the mapped bytes for
    /// safetensors, through one read tensor for other formats.
    /// </summary>
    private static void ReadInto(ITensorFile file, string key, Tensor destination)
    {
        if (file is SafeTensorsFile safetensors)
        {
            safetensors.ReadInto(key, destination);
            return;
        }
        using var value = file.Read(key);
        destination.copy_(value);
    }
}
