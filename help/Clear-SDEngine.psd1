@{
    Synopsis    = 'Frees models from the engine cache.'

    Description = @(
        @'
Clear-SDEngine removes engines (loaded models) from the module's engine cache and frees their memory: all of them, or
those whose model path matches -Model, which also binds the Model property of EngineInfo objects piped from
Get-SDEngine. The next call that needs a freed model loads it again.
'@
        @'
The cache is shared by every runspace of the process, so this also frees the models that other runspaces or thread
jobs loaded. An engine in use by a call in another runspace leaves the cache at once and is freed when that call ends;
the call itself finishes normally.
'@
        @'
Clear-SDEngine supports -WhatIf and -Confirm (its confirm impact is Low, so it asks only when $ConfirmPreference is
Low). It writes nothing unless -PassThru is given; -Verbose says what was freed.
'@
        @'
If freeing an engine fails, Clear-SDEngine writes a non-terminating EngineFreeFailed error (CloseError) whose target is
that engine's model, frees the others all the same, and with -PassThru still writes every engine it took out of the
cache, the failed one included: the cache no longer holds it, but its memory may not have been given back.
'@
    )

    Parameters  = @{
        Model    = @'
Frees only the engines whose model path (the full path of the model folder) matches this wildcard pattern,
case-insensitively. Binds the Model property of piped objects, such as Get-SDEngine's output. All engines are freed
when it is omitted.
'@
        PassThru = 'Writes an EngineInfo for each engine freed (its state just before it was freed).'
    }

    Inputs      = @(
        @{ Type = 'PSStableDiffusion.Engine.EngineInfo'; Description = 'Engines from Get-SDEngine, bound to -Model by their Model property.' }
    )

    Outputs     = @(
        @{ Type = 'None'; Description = 'Nothing by default.' }
        @{ Type = 'PSStableDiffusion.Engine.EngineInfo'; Description = 'With -PassThru, one per engine freed.' }
    )

    Examples    = @(
        @{
            Title   = 'Free every model'
            Code    = 'Clear-SDEngine'
            Remarks = 'Empties the engine cache; Get-SDEngine then lists nothing.'
        }
        @{
            Title   = 'Free one model and see what was freed'
            Code    = 'Clear-SDEngine -Model *upscaler* -PassThru'
            Remarks = 'Frees the engines loaded from model folders whose path contains "upscaler", on every device and precision, and lists them.'
        }
        @{
            Title   = 'Free the bfloat16 engines only'
            Code    = 'Get-SDEngine | Where-Object Precision -EQ bfloat16 | Clear-SDEngine'
            Remarks = @'
Frees the engines of the models that have a bfloat16 engine. Note that -Model selects by path, so a float32 engine of
the same model is freed too.
'@
        }
    )

    Links       = @(
        'Get-SDEngine'
        'New-SDImage'
        'about_PSStableDiffusion'
    )
}
