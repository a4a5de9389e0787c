namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>
/// Marks a <see cref="SchedulerBase"/> subclass for <see cref="SchedulerRegistry"/>. The class must have a public
/// constructor taking one <see cref="SchedulerConfig"/> (null = all defaults). Its diffusers class name is the C#
/// class name; it also resolves without the "Scheduler" suffix.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class DiffusersSchedulerAttribute(string description) : Attribute
{
    /// <summary>One line for <c>Get-SDScheduler</c>.</summary>
    public string Description { get; } = description;
}

/// <summary>
/// Another name for the scheduler it decorates (e.g. the AUTOMATIC1111 sampler name), with the config keys that name
/// implies, as a JSON object in <c>scheduler_config.json</c> syntax (e.g. <c>{"use_karras_sigmas": true}</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true, Inherited = false)]
public sealed class SchedulerAliasAttribute(string name, string configJson = "{}") : Attribute
{
    public string Name { get; } = name;
    public string ConfigJson { get; } = configJson;
}
