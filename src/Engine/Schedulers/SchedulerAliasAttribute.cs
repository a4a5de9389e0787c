namespace PSStableDiffusion.Engine.Schedulers;

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
