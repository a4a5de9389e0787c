namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>A resolvable scheduler name: a class name (with or without "Scheduler") or an alias such as "DPM++
/// 2M Karras".</summary>
/// <param name="Name">The name as registered.</param>
/// <param name="ClassName">The scheduler class it builds.</param>
/// <param name="Overrides">The config keys the name implies (empty for a plain class name).</param>
/// <param name="IsStochastic">Whether it draws noise (with the SD defaults plus <paramref name="Overrides"/>).</param>
/// <param name="Order">diffusers' <c>order</c>.</param>
/// <param name="ModelCallsPerStep">UNet evaluations per step.</param>
public sealed record SchedulerPreset(
    string Name,
    string ClassName,
    SchedulerConfig Overrides,
    bool IsStochastic,
    int Order,
    int ModelCallsPerStep,
    string Description);
