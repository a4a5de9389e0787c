using System.Reflection;

namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Finds every <see cref="SchedulerBase"/> subclass marked <see cref="DiffusersSchedulerAttribute"/> in this assembly,
/// so adding a scheduler is adding its file. Resolves names case-insensitively.
/// </summary>
public static class SchedulerRegistry
{
    private const string Suffix = "Scheduler";

    private static readonly Lazy<Catalog> Instance = new(BuildCatalog);

    /// <summary>One entry per scheduler class, ordered by class name.</summary>
    public static IReadOnlyList<SchedulerInfo> Schedulers => Instance.Value.Schedulers;

    /// <summary>Every resolvable name with what it builds (class names, short names, aliases).</summary>
    public static IReadOnlyList<SchedulerPreset> Presets => Instance.Value.Presets;

    /// <summary>All names for tab completion: aliases first (as users know them), then short and full
    /// class names.</summary>
    public static IReadOnlyList<string> AllNames => Instance.Value.Presets.Select(p => p.Name).ToArray();

    /// <summary>The preset for <paramref name="name"/>; throws <see cref="UnknownSchedulerException"/> listing
    /// valid names.</summary>
    public static SchedulerPreset Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Instance.Value.ByName.TryGetValue(name.Trim(), out var preset)
            ? preset
            : throw new UnknownSchedulerException(name, AllNames);
    }

    /// <summary>
    /// Checks that the options a user passed apply to the scheduler <paramref name="name"/> builds: eta only to the
    /// schedulers with an <c>eta</c>, Karras sigmas only to those with <c>use_karras_sigmas</c>. Passing one that the
    /// scheduler would ignore is an <see cref="ArgumentException"/> that names both, rather than silence.
    /// </summary>
    public static void ValidateOptions(string name, double? eta, bool? karrasSigmas)
    {
        var preset = Resolve(name);
        var info = Instance.Value.Schedulers.First(s => s.ClassName == preset.ClassName);
        if (eta is not null && !info.Defaults.ContainsKey("eta"))
            throw new ArgumentException(
                $"Eta does not apply to the scheduler '{name}' ({info.ClassName}); it applies to " +
                string.Join(", ", Instance.Value.Schedulers
                    .Where(s => s.Defaults.ContainsKey("eta")).Select(s => s.ShortName)) + ".",
                "Eta");
        if (karrasSigmas is not null && !info.Defaults.ContainsKey("use_karras_sigmas"))
            throw new ArgumentException(
                $"KarrasSigmas does not apply to the scheduler '{name}' ({info.ClassName}); it applies to " +
                string.Join(", ", Instance.Value.Schedulers
                    .Where(s => s.Defaults.ContainsKey("use_karras_sigmas")).Select(s => s.ShortName)) + ".",
                "KarrasSigmas");
    }

    public static bool TryResolve(string name, out SchedulerPreset? preset) =>
        Instance.Value.ByName.TryGetValue(name.Trim(), out preset);

    /// <summary>
    /// Builds the scheduler <paramref name="name"/> names, diffusers <c>from_config</c> style: the model's
    /// <c>scheduler_config.json</c> (<paramref name="modelConfig"/>, any scheduler's; the keys the class does not know
    /// are ignored), then the name's implied keys (e.g. Karras sigmas), then <paramref name="overrides"/> (e.g. eta).
    /// </summary>
    public static SchedulerBase Create(
        string name, SchedulerConfig? modelConfig = null, SchedulerConfig? overrides = null)
    {
        var preset = Resolve(name);
        var info = Instance.Value.Schedulers.First(s => s.ClassName == preset.ClassName);
        var config = (modelConfig ?? new SchedulerConfig()).Merge(preset.Overrides).Merge(overrides);
        return Construct(info.Type, config);
    }

    /// <summary>Builds the class named in the config's <c>_class_name</c> (a model's own scheduler).</summary>
    public static SchedulerBase FromConfig(SchedulerConfig config, SchedulerConfig? overrides = null) =>
        Create(
            config.ClassName ?? throw new ArgumentException("The scheduler config has no _class_name.", nameof(config)),
            config, overrides);

    private static SchedulerBase Construct(Type type, SchedulerConfig? config)
    {
        try
        {
            return (SchedulerBase)Activator.CreateInstance(type, [config])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    private sealed record Catalog(
        IReadOnlyList<SchedulerInfo> Schedulers,
        IReadOnlyList<SchedulerPreset> Presets,
        IReadOnlyDictionary<string, SchedulerPreset> ByName);

    private static Catalog BuildCatalog()
    {
        // Metadata describes each name as it would run on an SD 2.x model: the SD 2.1 scheduler config under it.
        var sdConfig = new SchedulerConfig { BetaStart = 0.00085, BetaEnd = 0.012, BetaSchedule = "scaled_linear" };
        var types = typeof(SchedulerBase).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(SchedulerBase))
                && !t.IsAbstract && t.GetCustomAttribute<DiffusersSchedulerAttribute>() is not null)
            .OrderBy(t => t.Name, StringComparer.Ordinal);

        var schedulers = new List<SchedulerInfo>();
        var aliasPresets = new List<SchedulerPreset>();
        var classPresets = new List<SchedulerPreset>();
        foreach (var type in types)
        {
            if (type.GetConstructor([typeof(SchedulerConfig)]) is null)
                throw new InvalidOperationException(
                    $"Scheduler {type.Name} needs a public constructor taking a SchedulerConfig.");
            var attribute = type.GetCustomAttribute<DiffusersSchedulerAttribute>()!;
            var shortName = type.Name.EndsWith(Suffix, StringComparison.Ordinal)
                ? type.Name[..^Suffix.Length] : type.Name;

            SchedulerPreset Describe(string name, SchedulerConfig overrides)
            {
                using var probe = Construct(type, sdConfig.Merge(overrides));
                return new SchedulerPreset(
                    name, type.Name, overrides, probe.IsStochastic, probe.Order, probe.ModelCallsPerStep,
                    attribute.Description);
            }

            var aliases = type.GetCustomAttributes<SchedulerAliasAttribute>().ToList();
            foreach (var alias in aliases)
                aliasPresets.Add(Describe(alias.Name, SchedulerConfig.Parse(alias.ConfigJson)));
            var plain = Describe(type.Name, new SchedulerConfig());
            classPresets.Add(plain with { Name = shortName });
            classPresets.Add(plain);

            using var defaults = Construct(type, null);
            schedulers.Add(new SchedulerInfo(
                type.Name, shortName, attribute.Description, aliases.Select(a => a.Name).ToArray(),
                plain.IsStochastic, plain.Order, plain.ModelCallsPerStep, defaults.Config.ToDictionary(), type));
        }

        var presets = aliasPresets.Concat(classPresets).ToList();
        var byName = new Dictionary<string, SchedulerPreset>(StringComparer.OrdinalIgnoreCase);
        var unique = new List<SchedulerPreset>();
        foreach (var preset in presets)
        {
            // An alias equal to a short name (e.g. "DDIM") is the same entry; the first registration wins.
            if (byName.TryAdd(preset.Name, preset)) unique.Add(preset);
            else if (byName[preset.Name].ClassName != preset.ClassName)
                throw new InvalidOperationException(
                    $"Scheduler name '{preset.Name}' is claimed by " +
                    $"{byName[preset.Name].ClassName} and {preset.ClassName}.");
        }
        return new Catalog(schedulers, unique, byName);
    }
}
