#Requires -Version 7.4
<#
.SYNOPSIS
Measures what a serialized SDImage costs: bytes on the wire (CLIXML, as Start-Job, remoting and Export-Clixml carry
it) and the time to serialize and to rehydrate, for a 768² image. JSON to stdout (and -Out).

.DESCRIPTION
Two images, since PNG size depends on the picture: random pixels (the worst case: nothing to compress) and, with
-PhotoPath, a photograph resized to the size (closer to what Stable Diffusion makes). Each carries a full record
(the SD 2.1 DDIM scheduler config included). Run after a build:
    dotnet pwsh ./bench/Measure-SDImageSerialization.ps1 -PhotoPath some.jpg -Out bench/results/serialization.json
#>
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../out/PSStableDiffusion'),
    [string] $PhotoPath,
    [int] $Size = 768,
    [int] $Repeats = 5,
    [string] $Out
)
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath

function Get-CpuName {
    if (Test-Path /proc/cpuinfo) { ((Get-Content /proc/cpuinfo | Where-Object { $_ -like 'model name*' } | Select-Object -First 1) -split ':', 2)[1].Trim() }
    else { $env:PROCESSOR_IDENTIFIER }
}

function New-Record {
    $config = Get-Content -Raw (Join-Path $PSScriptRoot '../tests/golden/txt2img_v/model/scheduler/scheduler_config.json')
    [PSStableDiffusion.Engine.GenerationRecord]@{
        Prompt = 'a lighthouse on a cliff at dawn, oil painting, highly detailed'; NegativePrompt = 'blurry, low quality'
        Seed = 42; Steps = 25; GuidanceScale = 7.5; Scheduler = 'DDIMScheduler'; Width = $Size; Height = $Size
        SchedulerConfig = [System.Text.Json.Nodes.JsonNode]::Parse($config); ModelPath = '/models/stable-diffusion-2-1'
        ModelHash = 'ab' * 32; DType = 'float32'; Device = 'cpu'; PipelineKind = 'Txt2Img'; ModuleVersion = '0.1.0'
        CreatedUtc = [datetimeoffset]::UtcNow
    }
}

function Measure-Image([string] $Name, $Image) {
    $serialize = [Collections.Generic.List[double]]::new()
    $rehydrate = [Collections.Generic.List[double]]::new()
    $serializeCpu = [Collections.Generic.List[double]]::new()
    $rehydrateCpu = [Collections.Generic.List[double]]::new()
    $process = [Diagnostics.Process]::GetCurrentProcess()
    $xml = $null
    for ($i = 0; $i -le $Repeats; $i++) {
        # CPU time next to the wall clock: on a shared machine the wall clock mostly measures the other work.
        $process.Refresh(); $cpu0 = $process.TotalProcessorTime.TotalMilliseconds
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $xml = [System.Management.Automation.PSSerializer]::Serialize($Image)
        $t1 = $clock.Elapsed.TotalMilliseconds
        $process.Refresh(); $cpu1 = $process.TotalProcessorTime.TotalMilliseconds
        $clock.Restart()
        $back = [System.Management.Automation.PSSerializer]::Deserialize($xml)
        $t2 = $clock.Elapsed.TotalMilliseconds
        $process.Refresh(); $cpu2 = $process.TotalProcessorTime.TotalMilliseconds
        if ($back -isnot [PSStableDiffusion.Engine.SDImage]) { throw 'not rehydrated' }
        if ($i -gt 0) {
            # the first run warms up
            $serialize.Add($t1); $rehydrate.Add($t2); $serializeCpu.Add($cpu1 - $cpu0); $rehydrateCpu.Add($cpu2 - $cpu1)
        }
    }
    $clixml = Join-Path ([IO.Path]::GetTempPath()) "sd-serialization-$PID.clixml"
    $Image | Export-Clixml -LiteralPath $clixml
    $fileBytes = (Get-Item $clixml).Length
    Remove-Item $clixml
    [ordered]@{
        image = $Name; width = $Image.Width; height = $Image.Height
        raw_rgb_bytes = $Image.Pixels.Length
        png_bytes = [PSStableDiffusion.Engine.Imaging.ImageCodec]::EncodePng($Image).Length
        clixml_bytes = $fileBytes
        serialize_ms_median = ($serialize | Sort-Object)[[int][math]::Floor($serialize.Count / 2)]
        rehydrate_ms_median = ($rehydrate | Sort-Object)[[int][math]::Floor($rehydrate.Count / 2)]
        serialize_cpu_ms_median = ($serializeCpu | Sort-Object)[[int][math]::Floor($serializeCpu.Count / 2)]
        rehydrate_cpu_ms_median = ($rehydrateCpu | Sort-Object)[[int][math]::Floor($rehydrateCpu.Count / 2)]
        serialize_ms = $serialize; rehydrate_ms = $rehydrate
    }
}

$record = New-Record
$noise = [byte[]]::new($Size * $Size * 3)
[Random]::new(1).NextBytes($noise)
$results = @(Measure-Image 'random pixels' ([PSStableDiffusion.Engine.SDImage]::new($Size, $Size, $noise, $record)))
if ($PhotoPath) {
    $photo = (Import-SDImage $PhotoPath).Resize($Size, $Size)
    $results += Measure-Image "photo: $(Split-Path -Leaf $PhotoPath)" ([PSStableDiffusion.Engine.SDImage]::new($Size, $Size, $photo.Pixels, $record))
}
$json = [ordered]@{
    benchmark = 'sdimage-serialization'; cpu = Get-CpuName; logical_processors = [Environment]::ProcessorCount
    load_average = if (Test-Path /proc/loadavg) { (Get-Content /proc/loadavg) } else { $null }
    repeats = $Repeats; utc = [datetime]::UtcNow.ToString('o'); results = $results
} | ConvertTo-Json -Depth 5
if ($Out) { New-Item -ItemType Directory -Force -Path (Split-Path $Out) | Out-Null; Set-Content -LiteralPath $Out -Value $json }
$json
