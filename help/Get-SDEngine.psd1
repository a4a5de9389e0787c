@{
    Synopsis    = 'Lists the models loaded in the engine cache, with the memory they hold and how they were used.'

    Description = @(
        @'
The first New-SDImage call on a model loads it (tokenizer, text encoder, UNet and VAE) onto its device in its
precision and keeps it in the module's engine cache, so later calls start at once. Get-SDEngine writes one EngineInfo
per loaded engine: the model folder, the device and precision (an engine is one model on one device in one
precision), the model variant, the memory its weights take, when it was loaded and last used, how many calls used it,
and whether a call is using it now.
'@
        @'
The cache belongs to the process, not to a runspace: ForEach-Object -Parallel, thread jobs and every runspace of the
session share it, and a model is never loaded twice at the same time. Calls on one engine run one at a time (the
others wait); different engines run concurrently. Clear-SDEngine frees engines.
'@
    )

    Parameters  = @{
        Model = @'
Lists only the engines whose model path (the full path of the model folder) matches this wildcard pattern,
case-insensitively, for example *2-1*. All engines are listed when it is omitted.
'@
    }

    Inputs      = @(
        @{ Type = 'None'; Description = 'Get-SDEngine takes no pipeline input.' }
    )

    Outputs     = @(
        @{
            Type        = 'PSStableDiffusion.Engine.EngineInfo'
            Description = @'
A snapshot of one engine: Model (the model folder's full path), Device (cpu or cuda:N), Precision (float32, bfloat16
or float16), Kind (txt2img, inpainting, depth2img or x4-upscaler, from the UNet's input channels), MemoryBytes (the
weights and buffers), LoadedAt, LastUsed, Uses (the calls that used it) and Busy (a call is using it now).
'@
        }
    )

    Examples    = @(
        @{
            Title   = 'See what is loaded'
            Code    = 'Get-SDEngine'
            Remarks = 'Lists every loaded engine with its device, precision, memory in MiB, last use, number of uses and whether it is busy.'
        }
        @{
            Title   = 'Total memory held by the cache'
            Code    = '(Get-SDEngine | Measure-Object MemoryBytes -Sum).Sum / 1GB'
            Remarks = 'Adds up the memory of every loaded engine, in GiB.'
        }
        @{
            Title   = 'Free the engines that have not been used for ten minutes'
            Code    = 'Get-SDEngine | Where-Object { -not $_.Busy -and $_.LastUsed -lt (Get-Date).AddMinutes(-10) } | Clear-SDEngine'
            Remarks = 'Clear-SDEngine takes the engines'' Model property from the pipeline.'
        }
    )

    Links       = @(
        'Clear-SDEngine'
        'New-SDImage'
        'about_PSStableDiffusion'
    )
}
