#Requires -Version 7.4
<#
.SYNOPSIS
Soak benchmark: several runspaces generate on the golden tiny models for a while, mixed with Clear-SDEngine,
Ctrl+C-style cancellations and bad inputs; reports calls, errors by id, RSS and live tensors as JSON.

.DESCRIPTION
Each of -Runspaces workers (ForEach-Object -Parallel) loops until -DurationSeconds have passed, picking at random:
txt2img (2 steps, a prompt out of 50), img2img (strength 0.5), -Count 2, Euler a, a bad input (steps 0, a width
that is not a multiple of 8, a model that does not exist, an unknown scheduler), a call stopped after 50-400 ms
the way Ctrl+C stops it (PowerShell.Stop() on a nested pipeline: StopProcessing, the cancellation token), and in
worker 1 a Clear-SDEngine about every 21 calls. Every error is counted by its FullyQualifiedErrorId; an id outside
the expected ones is listed under unexpected_errors. RSS (working set) and the engine's live-tensor count
([PSStableDiffusion.Engine.Runtime.TensorAccounting]::LiveTensors; TorchSharp's own TotalCount also counts wrappers
that new Parameter(...) empties) are taken after a warm-up and at the end, each after Clear-SDEngine and a GC, and
again after malloc_trim (rss_after_trim_mib: what the process really holds, without glibc's cached free blocks).
Worker 1 also samples RSS and live tensors every 60 s while the soak runs (a model loaded), to show the trend.
JSON goes to stdout (and -OutFile); progress to the host.

.EXAMPLE
dotnet pwsh bench/Invoke-SDSoak.ps1 -DurationSeconds 600 -OutFile bench/results/soak.json
#>
param(
    [int] $DurationSeconds = 600,
    [int] $Runspaces = 4,
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/PSStableDiffusion/PSStableDiffusion.psd1'),
    [string] $OutFile
)
Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

Import-Module $ModulePath
$golden = Join-Path $PSScriptRoot '../tests/golden'
$txt2img = (Resolve-Path (Join-Path $golden 'txt2img_eps_dpmpp/model')).Path
$img2img = (Resolve-Path (Join-Path $golden 'img2img/model')).Path
$initImagePath = (Resolve-Path (Join-Path $golden 'img2img/input_image.png')).Path
$expectedErrorIds = @(
    'ParameterArgumentValidationError'   # -Steps 0 (ValidateRange)
    'ModelNotFound'                      # a model path that does not exist
    'UnknownScheduler'                   # -Scheduler Nope
    'InvalidImageSize'                   # -Width 13: the engine refuses a size that is not a multiple of 8
    'PipelineStopped'                    # a stopped nested pipeline
    'OperationStopped'
)

function Measure-State {
    Clear-SDEngine | Out-Null
    [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
    $rss = [System.Diagnostics.Process]::GetCurrentProcess().WorkingSet64
    # glibc keeps freed blocks in its arenas; after malloc_trim what is left is what is really held.
    $null = [PSStableDiffusion.Engine.Runtime.TorchMemory]::ReleaseFreeHeap()
    $trimmed = [System.Diagnostics.Process]::GetCurrentProcess()
    $trimmed.Refresh()
    [pscustomobject]@{
        rss_mib                = [math]::Round($rss / 1MB, 1)
        rss_after_trim_mib     = [math]::Round($trimmed.WorkingSet64 / 1MB, 1)
        live_tensors           = [PSStableDiffusion.Engine.Runtime.TensorAccounting]::LiveTensors
        torchsharp_total_count = [TorchSharp.torch+Tensor]::TotalCount
    }
}

# Warm-up: every call type once, so one-time set-up is not counted as growth.
$init = Import-SDImage -Path $initImagePath
New-SDImage -Model $txt2img -Prompt 'warm-up' -Steps 2 -Seed 1 | Out-Null
New-SDImage -Model $img2img -Prompt 'warm-up' -InitImage $init -Strength 0.5 -Steps 4 -Seed 1 | Out-Null
$start = Measure-State
Write-Host "soak: $Runspaces runspaces for $DurationSeconds s; start RSS $($start.rss_mib) MiB, live tensors $($start.live_tensors)"

$deadline = [DateTime]::UtcNow.AddSeconds($DurationSeconds)
$clock = [System.Diagnostics.Stopwatch]::StartNew()
$workers = 1..$Runspaces | ForEach-Object -ThrottleLimit $Runspaces -Parallel {
    $worker = $_
    $modulePath = $using:ModulePath
    Import-Module $modulePath
    $txt2img = $using:txt2img; $img2img = $using:img2img
    $init = Import-SDImage -Path $using:initImagePath
    $random = [Random]::new($worker)
    $calls = 0; $cancelled = 0; $clears = 0
    $errors = @{}
    $samples = [System.Collections.Generic.List[object]]::new()
    $nextSample = [DateTime]::UtcNow
    while ([DateTime]::UtcNow -lt $using:deadline) {
        if ($worker -eq 1 -and [DateTime]::UtcNow -ge $nextSample) {
            # The trend while the soak runs (a model loaded, no clear or GC forced): growth shows as a rising line.
            $samples.Add([pscustomobject]@{
                t_s          = [math]::Round(($using:clock).Elapsed.TotalSeconds)
                rss_mib      = [math]::Round([System.Diagnostics.Process]::GetCurrentProcess().WorkingSet64 / 1MB, 1)
                live_tensors = [PSStableDiffusion.Engine.Runtime.TensorAccounting]::LiveTensors
            })
            $nextSample = $nextSample.AddSeconds(60)
        }
        $seed = $random.Next()
        $prompt = "soak prompt $($random.Next(50))"
        try {
            switch ($random.Next(10)) {
                { $_ -le 2 } { New-SDImage -Model $txt2img -Prompt $prompt -Steps 2 -Seed $seed | Out-Null; break }
                3 { New-SDImage -Model $img2img -Prompt $prompt -InitImage $init -Strength 0.5 -Steps 4 -Seed $seed | Out-Null; break }
                4 { New-SDImage -Model $txt2img -Prompt $prompt -Steps 2 -Count 2 -Seed $seed | Out-Null; break }
                5 { New-SDImage -Model $txt2img -Prompt $prompt -Steps 3 -Scheduler EulerAncestralDiscrete -Seed $seed | Out-Null; break }
                6 {
                    switch ($random.Next(4)) {
                        0 { New-SDImage -Model $txt2img -Prompt $prompt -Steps 0 | Out-Null }
                        1 { New-SDImage -Model $txt2img -Prompt $prompt -Steps 2 -Width 13 | Out-Null }
                        2 { New-SDImage -Model (Join-Path $txt2img 'no-such-model') -Prompt $prompt -Steps 2 | Out-Null }
                        3 { New-SDImage -Model $txt2img -Prompt $prompt -Steps 2 -Scheduler Nope | Out-Null }
                    }
                    break
                }
                7 {
                    # Ctrl+C: StopProcessing on a pipeline in its own runspace, 50-400 ms in.
                    $ps = [powershell]::Create()
                    try {
                        $null = $ps.AddScript("Import-Module '$modulePath'; New-SDImage -Model '$txt2img' -Prompt '$prompt' -Steps 8 -Seed $seed | Out-Null")
                        $async = $ps.BeginInvoke()
                        Start-Sleep -Milliseconds $random.Next(50, 400)
                        $ps.Stop()
                        try { $ps.EndInvoke($async) | Out-Null } catch { }
                        $cancelled++
                    } finally { $ps.Dispose() }
                    break
                }
                default {
                    if ($worker -eq 1 -and $random.Next(3) -eq 0) { Clear-SDEngine | Out-Null; $clears++ }
                    else { New-SDImage -Model $txt2img -Prompt $prompt -Steps 2 -Seed $seed | Out-Null }
                }
            }
            $calls++
        } catch {
            $id = ($_.FullyQualifiedErrorId -split ',')[0]
            $errors[$id] = 1 + ($errors[$id] ?? 0)
        }
    }
    [pscustomobject]@{ Worker = $worker; Calls = $calls; Cancelled = $cancelled; Clears = $clears; Errors = $errors; Samples = $samples }
}
$elapsed = $clock.Elapsed.TotalSeconds
$end = Measure-State

$errorsById = [ordered]@{}
foreach ($w in $workers) { foreach ($k in $w.Errors.Keys) { $errorsById[$k] = ($errorsById[$k] ?? 0) + $w.Errors[$k] } }
$cpu = (Get-Content /proc/cpuinfo -ErrorAction SilentlyContinue | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
$report = [ordered]@{
    cpu                    = $cpu
    logical_processors     = [Environment]::ProcessorCount
    duration_s             = [math]::Round($elapsed, 1)
    runspaces              = $Runspaces
    calls_completed        = [int] ($workers | Measure-Object Calls -Sum).Sum
    cancellations          = [int] ($workers | Measure-Object Cancelled -Sum).Sum
    clears                 = [int] ($workers | Measure-Object Clears -Sum).Sum
    errors_by_id           = $errorsById
    unexpected_errors      = @($errorsById.Keys | Where-Object { $_ -notin $expectedErrorIds })
    start                  = $start
    end                    = $end
    samples                = @($workers | Where-Object Worker -EQ 1 | ForEach-Object Samples)
    rss_growth_mib         = [math]::Round($end.rss_mib - $start.rss_mib, 1)
    rss_after_trim_growth_mib = [math]::Round($end.rss_after_trim_mib - $start.rss_after_trim_mib, 1)
    live_tensor_growth     = $end.live_tensors - $start.live_tensors
}
$json = $report | ConvertTo-Json -Depth 5
if ($OutFile) { New-Item -ItemType Directory -Force (Split-Path $OutFile) | Out-Null; Set-Content -LiteralPath $OutFile -Value $json }
$json
