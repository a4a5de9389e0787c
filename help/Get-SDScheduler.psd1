@{
    Synopsis    = 'Lists the schedulers (samplers) that the generating cmdlets accept, with their names and properties.'

    Description = @(
        @'
Get-SDScheduler writes one SchedulerInfo object per scheduler class the module implements (13 of diffusers'
schedulers, from DDIM to UniPC). Each has the diffusers class name (ClassName), the name without the Scheduler suffix
(ShortName), the AUTOMATIC1111 sampler names that build it (Aliases, such as 'DPM++ 2M Karras' or 'Euler a'), a one-line
Description, whether it draws fresh noise at each step (IsStochastic), diffusers' Order, the number of UNet calls per
step (ModelCallsPerStep: 2 for Heun and DPM2, so a step costs twice as much), and its diffusers defaults (Defaults, the
config keys and values it takes).
'@
        @'
Any of these names works with -Scheduler of New-SDImage, Invoke-SDInpaint and Resize-SDUpscale, case-insensitively:
the class name, the short name or an alias. An alias implies config keys on top of the model's scheduler config (for
example 'DPM++ 2M Karras' is DPMSolverMultistep with use_karras_sigmas, 'DPM++ 2M SDE' uses the sde-dpmsolver++
algorithm).
'@
        @'
The schedulers whose Defaults hold eta take New-SDImage -Eta, and those whose Defaults hold use_karras_sigmas take
-KarrasSigmas; passing either to another scheduler is an error that names the parameter.
'@
    )

    Parameters  = @{
        Name = @{
            Description = @'
Only the schedulers with a class name, short name or alias that matches one of these names or wildcard patterns
(case-insensitive), for example 'DPM++ 2M Karras', 'Euler*' or '*Karras'. Tab completes the names. Accepted from the
pipeline. A name without wildcards that matches nothing is the non-terminating error UnknownScheduler (ObjectNotFound),
whose message lists the valid names; a pattern that matches nothing writes nothing.
'@
            DefaultValue = 'All schedulers'
        }
    }

    Inputs      = @(
        @{ Type = 'System.String'; Description = 'Scheduler names or wildcard patterns.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.Schedulers.SchedulerInfo'
            Description = @'
One per scheduler class, ordered by class name: ClassName, ShortName, Description, Aliases, IsStochastic, Order,
ModelCallsPerStep, Defaults (a dictionary of config keys and values) and Type (the .NET class). The default view is a
table of ShortName, Stochastic, Order, Calls/step and Aliases; Format-List adds the class name and description.
Defaults and Type are shown by Format-List * or Select-Object.
'@
        }
    )

    Notes       = @(
        @'
IsStochastic, Order and ModelCallsPerStep describe the scheduler with its plain class name on an SD 2.x config; an
alias can change them (for example 'DPM++ 2M SDE' is stochastic, although DPMSolverMultistep is not by default).
'@
    )

    Examples    = @(
        @{
            Title   = 'List every scheduler'
            Code    = 'Get-SDScheduler'
            Remarks = 'Shows a table of the schedulers with their AUTOMATIC1111 names.'
        }
        @{
            Title   = 'Find the class behind an AUTOMATIC1111 sampler name'
            Code    = 'Get-SDScheduler ''DPM++ 2M Karras'' | Format-List ClassName, Description, Aliases'
            Remarks = 'DPM++ 2M Karras is DPMSolverMultistepScheduler with Karras sigmas.'
        }
        @{
            Title   = 'Schedulers that take Karras sigmas'
            Code    = 'Get-SDScheduler | Where-Object { $_.Defaults.ContainsKey(''use_karras_sigmas'') } | Select-Object -ExpandProperty ShortName'
            Remarks = 'These accept New-SDImage -KarrasSigmas; the others refuse it.'
        }
        @{
            Title   = 'Try every deterministic scheduler on one seed'
            Code    = @'
Get-SDScheduler | Where-Object { -not $_.IsStochastic } | ForEach-Object {
    New-SDImage 'a bowl of fruit, still life' -Model ./sd21 -Seed 42 -Steps 20 -Scheduler $_.ShortName
} | Save-SDImage './compare/{Scheduler}.png'
'@
            Remarks = 'Writes one image per scheduler, named after it, to compare them side by side.'
        }
    )

    Links       = @(
        'New-SDImage'
        'Invoke-SDInpaint'
        'Resize-SDUpscale'
        'about_PSStableDiffusion'
    )
}
