using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using PSStableDiffusion.Engine.Schedulers;

namespace PSStableDiffusion.Infrastructure;

/// <summary>Tab completion for -Scheduler: every diffusers class name and AUTOMATIC1111 sampler name.</summary>
public sealed class SchedulerNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(
        string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var typed = wordToComplete.Trim('\'', '"');
        foreach (var preset in SchedulerRegistry.Presets)
        {
            if (!preset.Name.StartsWith(typed, StringComparison.OrdinalIgnoreCase)) continue;
            var text = preset.Name.Contains(' ') || preset.Name.Contains('+') ? $"'{preset.Name}'" : preset.Name;
            yield return new CompletionResult(text, preset.Name, CompletionResultType.ParameterValue,
                $"{preset.ClassName}{(preset.IsStochastic ? " (stochastic)" : "")}: {preset.Description}");
        }
    }
}
