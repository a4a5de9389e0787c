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
