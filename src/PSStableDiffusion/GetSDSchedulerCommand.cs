using System.Management.Automation;
using PSStableDiffusion.Engine.Schedulers;
using PSStableDiffusion.Infrastructure;

namespace PSStableDiffusion;

/// <summary>
/// Lists the schedulers (samplers) New-SDImage accepts: diffusers class names and AUTOMATIC1111 names, whether each is
/// stochastic, its order, UNet calls per step, and its diffusers defaults.
/// </summary>
[Cmdlet(VerbsCommon.Get, "SDScheduler")]
[OutputType(typeof(SchedulerInfo))]
public sealed class GetSDSchedulerCommand : SDCmdletBase
{
    #region Parameters

    /// <summary>Only schedulers with a class name, short name or alias matching these wildcard patterns.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(SchedulerNameCompleter))]
    public string[]? Name { get; set; }

    #endregion

    #region Overrides

    protected override void ProcessRecord()
    {
        var patterns = (Name ?? new[] { "*" })
            .Select(n => new WildcardPattern(n.Trim('\'', '"'), WildcardOptions.IgnoreCase))
            .ToList();
        bool any = false;
        foreach (var scheduler in SchedulerRegistry.Schedulers)
        {
            var names = new[] { scheduler.ClassName, scheduler.ShortName }.Concat(scheduler.Aliases);
            if (!names.Any(n => patterns.Any(p => p.IsMatch(n)))) continue;
            any = true;
            WriteObject(scheduler);
        }
        if (!any && Name is not null && !Name.Any(WildcardPattern.ContainsWildcardCharacters))
        {
            WriteError(new ErrorRecord(
                new UnknownSchedulerException(string.Join(", ", Name), SchedulerRegistry.AllNames),
                "UnknownScheduler", ErrorCategory.ObjectNotFound, Name));
        }
    }

    #endregion
}
