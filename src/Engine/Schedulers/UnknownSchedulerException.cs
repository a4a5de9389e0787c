namespace PSStableDiffusion.Engine.Schedulers;

/// <summary>Thrown for a scheduler name that resolves to nothing; the message lists the valid names.</summary>
public sealed class UnknownSchedulerException(string name, IEnumerable<string> validNames)
    : ArgumentException($"Unknown scheduler '{name}'. Valid names: {string.Join(", ", validNames)}.", nameof(name))
{
    public string SchedulerName { get; } = name;
}
