#Requires -Version 7.4
<#
.SYNOPSIS
Runs every *.Tests.ps1 under tests/Pester against the built module and writes a summary for build.ps1.

.DESCRIPTION
build.ps1 -Test starts this in a fresh pwsh (a binary module cannot be unloaded, so each test run needs a new
process) and passes the paths through environment variables. It can also be run by hand after a build:
    dotnet pwsh ./tests/Pester/Invoke-PesterSuite.ps1
Results: <ResultsFolder>/pester.xml (NUnit 3) and <ResultsFolder>/summary.json (counts and failing test names).
The exit code is 0 only when every test ran and passed.
#>
param(
    # The built module folder; default out/PSStableDiffusion.
    [string] $ModulePath = $env:SD_MODULE_PATH,
    # Pester.psd1; default: the version pinned by tests/tools/PesterTools.csproj in the NuGet packages folder.
    [string] $PesterPath = $env:SD_PESTER_PATH,
    # Where the result files go; default out/test-results/pester.
    [string] $ResultsFolder = $env:SD_RESULTS_FOLDER
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path

if (-not $ModulePath) { $ModulePath = Join-Path $repoRoot 'out/PSStableDiffusion' }
if (-not $ResultsFolder) { $ResultsFolder = Join-Path $repoRoot 'out/test-results/pester' }
if (-not $PesterPath) {
    $version = ([xml](Get-Content -Raw (Join-Path $repoRoot 'tests/tools/PesterTools.csproj'))).Project.PropertyGroup.PesterVersion |
        Where-Object { $_ } | Select-Object -First 1
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
    $PesterPath = Join-Path $packages "pester/$version/tools/Pester.psd1"
}
if (-not (Test-Path $ModulePath)) { throw "No built module at '$ModulePath'. Run: dotnet pwsh ./build.ps1" }
if (-not (Test-Path $PesterPath)) { throw "Pester not found at '$PesterPath'. Run: dotnet restore tests/tools" }

# The tests find the module through TestUtilities.psm1, which reads this variable.
$env:SD_MODULE_PATH = (Resolve-Path $ModulePath).Path
# TorchSharp falls back to copying natives out of the NuGet packages folder when it cannot load them from next to
# TorchSharp.dll. Point that folder at an empty one (Pester is already located) so a broken layout fails here.
$emptyPackages = Join-Path ([IO.Path]::GetTempPath()) "PSStableDiffusion.Tests.nuget-$PID"
if (-not $env:NUGET_PACKAGES -or @(Get-ChildItem -Force -LiteralPath $env:NUGET_PACKAGES -ErrorAction Ignore).Count -gt 0) {
    New-Item -ItemType Directory -Path $emptyPackages -Force | Out-Null
    $env:NUGET_PACKAGES = $emptyPackages
}
# The help files are en-US; pin the UI culture so Get-Help finds them whatever the machine's locale.
[System.Globalization.CultureInfo]::CurrentUICulture = [System.Globalization.CultureInfo]::GetCultureInfo('en-US')

# The golden comparisons need float32: -Precision Auto (the default) picks bfloat16 on CPUs where it measures faster.
# New-SDImage.Precision.Tests.ps1 lifts this for the tests of Auto itself.
foreach ($cmdlet in 'New-SDImage', 'Invoke-SDInpaint', 'Resize-SDUpscale') {
    $global:PSDefaultParameterValues["${cmdlet}:Precision"] = 'Float32'
}

Import-Module $PesterPath -Force
New-Item -ItemType Directory -Path $ResultsFolder -Force | Out-Null

$configuration = New-PesterConfiguration
$configuration.Run.Path = $PSScriptRoot
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
# Plain text in CI logs (output redirected); colours at a terminal.
$configuration.Output.RenderMode = if ([Console]::IsOutputRedirected) { 'Plaintext' } else { 'Auto' }
$configuration.TestResult.Enabled = $true
$configuration.TestResult.OutputFormat = 'NUnit3'
$configuration.TestResult.OutputPath = Join-Path $ResultsFolder 'pester.xml'

$run = Invoke-Pester -Configuration $configuration

$problems = @(
    $run.Failed | ForEach-Object { "failed: $($_.ExpandedPath)" }
    $run.Skipped | ForEach-Object { "skipped: $($_.ExpandedPath)" }
    $run.NotRun | ForEach-Object { "not run: $($_.ExpandedPath)" }
    $run.Inconclusive | ForEach-Object { "inconclusive: $($_.ExpandedPath)" }
    $run.FailedBlocks | ForEach-Object { "failed block: $($_.ExpandedPath)" }
    $run.FailedContainers | ForEach-Object { "failed file: $($_.Item)" }
)
# A file or block whose setup or teardown failed also fails its tests (already counted), but one that failed where
# no test did (a discovery error, an AfterAll) would otherwise go unseen: count each such one as one failure.
function Test-HasFailedTest($Block) {
    $tests = if ($Block.psobject.Properties['Tests']) { @($Block.Tests) } else { @() }
    $blocks = if ($Block.psobject.Properties['Blocks']) { @($Block.Blocks) } else { @() }
    @($tests | Where-Object Result -EQ 'Failed').Count -gt 0 -or @($blocks | Where-Object { Test-HasFailedTest $_ }).Count -gt 0
}
$failedBlocks = @($run.FailedBlocks | Where-Object { -not (Test-HasFailedTest $_) }).Count
$failedContainers = @($run.FailedContainers | Where-Object { -not (Test-HasFailedTest $_) }).Count

[ordered]@{
    Passed           = $run.PassedCount
    Failed           = $run.FailedCount
    Skipped          = $run.SkippedCount
    NotRun           = $run.NotRunCount
    Inconclusive     = $run.InconclusiveCount
    FailedBlocks     = $failedBlocks
    FailedContainers = $failedContainers
    Problems         = $problems
} | ConvertTo-Json | Set-Content -LiteralPath (Join-Path $ResultsFolder 'summary.json') -Encoding utf8

if ($emptyPackages -eq $env:NUGET_PACKAGES) { Remove-Item -LiteralPath $emptyPackages -Recurse -Force -ErrorAction Ignore }
$clean = $run.Result -eq 'Passed' -and $run.SkippedCount + $run.NotRunCount + $run.InconclusiveCount -eq 0
exit ([int](-not $clean))
