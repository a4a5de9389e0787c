namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>A scheduler class found by <see cref="SchedulerRegistry"/>.</summary>
/// <param name="ClassName">The diffusers class name, e.g. "EulerAncestralDiscreteScheduler".</param>
/// <param name="ShortName">Without the "Scheduler" suffix, e.g. "EulerAncestralDiscrete".</param>
/// <param name="Description">One line for <c>Get-SDScheduler</c>.</param>
/// <param name="Aliases">The other names that resolve to it (A1111 sampler names), each possibly
/// with overrides.</param>
/// <param name="IsStochastic">Whether it draws noise with its default config.</param>
/// <param name="Order">diffusers' <c>order</c>.</param>
/// <param name="ModelCallsPerStep">UNet evaluations per step.</param>
/// <param name="Defaults">Its diffusers defaults (config keys and values).</param>
public sealed record SchedulerInfo(
    string ClassName,
    string ShortName,
    string Description,
    IReadOnlyList<string> Aliases,
    bool IsStochastic,
    int Order,
    int ModelCallsPerStep,
    IReadOnlyDictionary<string, object> Defaults,
    Type Type);
