#Requires -Version 7.4
<#
.SYNOPSIS
Builds the PSStableDiffusion module into out/PSStableDiffusion, runs every test, or packages the module.

.DESCRIPTION
Build (default): publishes src/PSStableDiffusion for this machine's runtime identifier, lays out a ready-to-import
module in out/PSStableDiffusion (manifest, formats, help, managed assemblies and the libtorch natives flat next to
TorchSharp.dll), generates the MAML help from help/*.psd1 (into en-US/ and the module; see help/README.md), then
imports it in a fresh pwsh and calls Get-SDDevice to prove the natives load.

Test: builds, runs the xunit engine tests (tests/Engine.Tests) and the Pester module tests (tests/Pester, in a child
pwsh that imports out/PSStableDiffusion), and ends with exactly one line "N passed, N failed". Skipped or not-run
tests, and suites that did not report, count as failed; the exit code is 1 when anything failed.

Package: builds, then publishes out/PSStableDiffusion with PSResourceGet into a local folder repository,
out/packages/<rid>-<backend>/PSStableDiffusion.<version>.nupkg, which Install-PSResource installs. The package holds
this platform's libtorch natives (about 120 MB compressed for linux-x64 cpu).

Run it from a fresh clone with: dotnet tool restore; dotnet pwsh ./build.ps1

.PARAMETER Configuration
Release (default) or Debug.

.PARAMETER Backend
cpu (default) or cuda: which TorchSharp native package to build with (the SDBackend MSBuild property). cuda picks
TorchSharp-cuda-windows or TorchSharp-cuda-linux for the building platform; with -LibTorch, it requires that folder
to hold libtorch_cuda.

.PARAMETER LibTorch
Build against an installed libtorch instead of a TorchSharp native package: the folder of a libtorch archive, or the
torch package folder of a Python install (its lib/ holds the libraries). The module then carries no libtorch of its
own and loads it from that folder (recorded in PSStableDiffusion.LibTorch.json in the module;
$env:PSSTABLEDIFFUSION_LIBTORCH overrides it at run time). Default: $env:PSSTABLEDIFFUSION_LIBTORCH.

.PARAMETER LibTorchSharp
With -LibTorch: a LibTorchSharp library (TorchSharp's native shim) already built for that libtorch.

.PARAMETER TorchSharpSource
With -LibTorch: a TorchSharp checkout at tag v0.107.0 (or its src/Native folder); LibTorchSharp is built from it
against the -LibTorch folder with CMake (build/native/CMakeLists.txt). Default:
$env:PSSTABLEDIFFUSION_TORCHSHARP_SOURCE. Without -LibTorchSharp or -TorchSharpSource, the TorchSharp package's
LibTorchSharp is used, which fits libtorch 2.10 only.

.EXAMPLE
dotnet pwsh ./build.ps1 -Test

.EXAMPLE
./build.ps1 -Backend cuda -LibTorch /opt/libtorch -TorchSharpSource ~/src/TorchSharp

Builds a CUDA module that uses the libtorch in /opt/libtorch and a LibTorchSharp built for it.
#>
[CmdletBinding(DefaultParameterSetName = 'Build')]
param(
    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release',

    [ValidateSet('cpu', 'cuda')]
    [string] $Backend = 'cpu',

    [string] $LibTorch = $env:PSSTABLEDIFFUSION_LIBTORCH,

    [string] $LibTorchSharp,

    [string] $TorchSharpSource = $env:PSSTABLEDIFFUSION_TORCHSHARP_SOURCE,

    [Parameter(ParameterSetName = 'Test', Mandatory)]
    [switch] $Test,

    [Parameter(ParameterSetName = 'Package', Mandatory)]
    [switch] $Package,

    # Build, then generate an image with the built module (the README's first command).
    [Parameter(ParameterSetName = 'Generate', Mandatory)]
    [switch] $Generate,

    # -Generate: a diffusers folder, a single .safetensors/.ckpt checkpoint or a hub id. Default: $env:SD_MODEL, else
    # the tiny random-weight SD 2.1 test model in tests/golden (it proves the whole path; its images are coloured noise).
    [Parameter(ParameterSetName = 'Generate')]
    [string] $Model,

    [Parameter(ParameterSetName = 'Generate')]
    [string] $Prompt = 'a lighthouse on a cliff at dawn, oil painting',

    [Parameter(ParameterSetName = 'Generate')]
    [string] $OutputPath = 'out/images'
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$ModuleName = 'PSStableDiffusion'
$RepoRoot = $PSScriptRoot
$OutRoot = Join-Path $RepoRoot 'out'
$ModuleOut = Join-Path $OutRoot $ModuleName
$TestResults = Join-Path $OutRoot 'test-results'
$HelpFileName = "$ModuleName.dll-Help.xml"

# libtorch natives that nothing here loads (Python bindings, test backends, mobile/AOT backends, shared-memory
# manager): about 33 MB. Matched against file names of the published natives on every platform.
$UnneededNatives = '(torch_python|jitbackend_test|torchbind_test|nnapi_backend|aoti_custom_ops|torch_global_deps|backend_with_compiler|^(lib)?shm)\.(so|dll|dylib)'
# Native debug symbols that packages put next to their DLLs: SkiaSharp.NativeAssets.Win32's libSkiaSharp.pdb is 84 MB
# (win-x64, 3.119.4), seven times the DLL.
$UnneededSymbols = '^libSkiaSharp\.pdb$'

#region Helpers

. (Join-Path $RepoRoot 'build/ExternalLibTorch.ps1')

function Get-RuntimeId {
    $os = if ($IsWindows) { 'win' } elseif ($IsMacOS) { 'osx' } else { 'linux' }
    $arch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString().ToLowerInvariant()
    "$os-$arch"
}

$Clock = [Diagnostics.Stopwatch]::StartNew()

function Write-Step([string] $Message) {
    Write-Host ("==> [{0:mm\:ss}] {1}" -f $Clock.Elapsed, $Message) -ForegroundColor Cyan
}

function Invoke-Dotnet {
    param([Parameter(Mandatory)] [string[]] $Arguments)
    Write-Host "dotnet $($Arguments -join ' ')" -ForegroundColor DarkGray
    & dotnet @Arguments | Out-Host
    $LASTEXITCODE
}

# Runs a script in a fresh pwsh: the same PowerShell as this one (the dotnet tool or an installed pwsh), with extra
# environment variables. A binary module cannot be unloaded, so every import of a rebuilt module needs a new process.
function Invoke-ChildPwsh {
    param(
        [Parameter(Mandatory)] [string] $Script,
        [hashtable] $Environment = @{}
    )
    $executable = [Environment]::ProcessPath
    $arguments = @()
    if ([IO.Path]::GetFileNameWithoutExtension($executable) -eq 'dotnet') {
        # Running as a dotnet tool: the host is dotnet and PowerShell itself is pwsh.dll in $PSHOME.
        $arguments += Join-Path $PSHOME 'pwsh.dll'
    }
    # Plain text when the output goes to a log, as Pester does.
    $Script = "if ([Console]::IsOutputRedirected) { `$PSStyle.OutputRendering = 'PlainText' }`n$Script"
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($Script))
    $arguments += '-NoProfile', '-NonInteractive', '-OutputFormat', 'Text', '-EncodedCommand', $encoded

    $saved = @{}
    foreach ($name in $Environment.Keys) {
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $Environment[$name])
    }
    try {
        & $executable @arguments | Out-Host
        $LASTEXITCODE
    }
    finally {
        foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
    }
}

# An empty NuGet packages folder for processes that use the built module: TorchSharp falls back to copying natives
# out of the NuGet cache when it cannot load them from next to TorchSharp.dll, which would hide a broken layout.
function Get-EmptyNuGetFolder {
    $path = Join-Path $OutRoot 'empty-nuget-packages'
    if (Test-Path $path) { Remove-Item $path -Recurse -Force }
    New-Item -ItemType Directory -Path $path | Out-Null
    $path
}

# Makes $Destination hold exactly the files of $Source that pass $Include: copies new or changed files (by size and
# time stamp), deletes the rest. Copying only what changed keeps a rebuild fast with ~450 MB of natives.
function Sync-Folder {
    param(
        [Parameter(Mandatory)] [string] $Source,
        [Parameter(Mandatory)] [string] $Destination,
        [Parameter(Mandatory)] [scriptblock] $Include
    )
    New-Item -ItemType Directory -Path $Destination -Force | Out-Null
    $wanted = @{}
    foreach ($file in Get-ChildItem -LiteralPath $Source -File -Recurse) {
        if (-not (& $Include $file)) { continue }
        $relative = [IO.Path]::GetRelativePath($Source, $file.FullName)
        $wanted[$relative] = $true
        $target = Join-Path $Destination $relative
        $existing = Get-Item -LiteralPath $target -ErrorAction Ignore
        if ($existing -and $existing.Length -eq $file.Length -and $existing.LastWriteTimeUtc -eq $file.LastWriteTimeUtc) {
            continue
        }
        New-Item -ItemType Directory -Path (Split-Path $target) -Force | Out-Null
        [IO.File]::Copy($file.FullName, $target, $true)
        [IO.File]::SetLastWriteTimeUtc($target, $file.LastWriteTimeUtc)
    }
    foreach ($file in Get-ChildItem -LiteralPath $Destination -File -Recurse) {
        $relative = [IO.Path]::GetRelativePath($Destination, $file.FullName)
        if (-not $wanted.ContainsKey($relative)) { Remove-Item -LiteralPath $file.FullName -Force }
    }
    Get-ChildItem -LiteralPath $Destination -Directory -Recurse |
        Sort-Object { $_.FullName.Length } -Descending |
        Where-Object { -not (Get-ChildItem -LiteralPath $_.FullName -Force) } |
        Remove-Item -Force
}

#endregion

#region Build

function Build-Module {
    $rid = Get-RuntimeId
    # -LibTorch: checked before anything is built, so a wrong folder fails at once.
    $external = if ($LibTorch) {
        Resolve-ExternalLibTorch -Folder $LibTorch -Backend $Backend -LibTorchSharp $LibTorchSharp -TorchSharpSource $TorchSharpSource
    }
    $natives = if ($external) { 'external' } else { 'package' }
    $staging = Join-Path $OutRoot "publish/$Configuration/$rid-$Backend$(if ($external) { '-external' })"
    $shimPath = $null
    if ($external) {
        Write-Step "libtorch $($external.Version) from $($external.LibraryFolder); LibTorchSharp: $($external.LibTorchSharp.Kind)"
        $shimPath = switch ($external.LibTorchSharp.Kind) {
            'file' { $external.LibTorchSharp.Path }
            'build' { Write-Step 'Building LibTorchSharp with CMake'; Build-LibTorchSharp -Resolved $external -WorkFolder (Join-Path $OutRoot "native/$rid-$Backend") }
            default { $null }
        }
    }

    Write-Step "Publishing $ModuleName ($Configuration, $rid, backend $Backend, natives $natives)"
    # With a runtime identifier the natives land flat next to TorchSharp.dll, where TorchSharp looks for them
    # (pwsh ignores the module's .deps.json, so runtimes/<rid>/native would not be found).
    $code = Invoke-Dotnet @(
        'publish', (Join-Path $RepoRoot "src/$ModuleName/$ModuleName.csproj"),
        '--configuration', $Configuration, '--runtime', $rid, '--self-contained', 'false',
        "-p:SDBackend=$Backend", "-p:SDNatives=$natives", '--output', $staging, '-nologo')
    if ($code -ne 0) { throw "dotnet publish failed with exit code $code." }

    Write-Step "Laying out $ModuleOut"
    Sync-Folder -Source $staging -Destination $ModuleOut -Include {
        param($file)
        $file.Name -notmatch $UnneededNatives -and $file.Name -notmatch $UnneededSymbols -and $file.Name -notlike '*.deps.json'
    }
    # The staging copy is as large as the module (libtorch, ~470 MB) and nothing reads it again: a disk-tight CI
    # machine ran out of space installing the package later, so it goes as soon as the module is laid out.
    Remove-Item -LiteralPath $staging -Recurse -Force
    foreach ($file in "$ModuleName.psd1", "$ModuleName.Format.ps1xml", "$ModuleName.Types.ps1xml") {
        Copy-Item -LiteralPath (Join-Path $RepoRoot $file) -Destination $ModuleOut -Force
    }
    $helpOut = Join-Path $ModuleOut 'en-US'
    New-Item -ItemType Directory -Path $helpOut -Force | Out-Null
    # Conceptual topics (about_*.help.txt) are copied as they are; the MAML is generated next.
    foreach ($file in Get-ChildItem -LiteralPath (Join-Path $RepoRoot 'en-US') -File | Where-Object Name -NE $HelpFileName) {
        Copy-Item -LiteralPath $file.FullName -Destination $helpOut -Force
    }
    if ($external) { Install-ExternalLibTorch -ModuleFolder $ModuleOut -Resolved $external -LibTorchSharpPath $shimPath }
    Build-Help

    Test-ModuleLayout
    Test-ModuleImport
}

# Generates the MAML help from help/<Cmdlet>.psd1 and the built cmdlets' metadata, in a fresh pwsh (it imports the
# module), into the repository's en-US (committed, so a diff shows every help change) and the module's en-US.
function Build-Help {
    Write-Step 'Generating help from help/*.psd1'
    $generator = Join-Path $RepoRoot 'help/Build-ModuleHelp.ps1'
    $script = "& '$($generator -replace "'", "''")' -ModulePath `$env:SD_MODULE_PATH -SourcePath `$env:SD_HELP_SOURCES -OutputPath (`$env:SD_HELP_OUTPUTS -split [IO.Path]::PathSeparator)"
    $code = Invoke-ChildPwsh -Script $script -Environment @{
        SD_MODULE_PATH  = $ModuleOut
        SD_HELP_SOURCES = Join-Path $RepoRoot 'help'
        SD_HELP_OUTPUTS = (Join-Path $RepoRoot "en-US/$HelpFileName"), (Join-Path $ModuleOut "en-US/$HelpFileName") -join [IO.Path]::PathSeparator
    }
    if ($code -ne 0) { throw "Help generation failed (exit code $code): fix the help sources in $(Join-Path $RepoRoot 'help') named above." }
}

function Test-ModuleLayout {
    $torchSharp = Join-Path $ModuleOut 'TorchSharp.dll'
    if (-not (Test-Path $torchSharp)) { throw "TorchSharp.dll is missing from $ModuleOut." }
    $nativeName = if ($IsWindows) { 'LibTorchSharp.dll' } elseif ($IsMacOS) { 'libLibTorchSharp.dylib' } else { 'libLibTorchSharp.so' }
    if (-not (Test-Path (Join-Path $ModuleOut $nativeName))) {
        throw "$nativeName is not next to TorchSharp.dll in ${ModuleOut}: the publish did not lay the natives flat."
    }
    # SkiaSharp decodes, encodes and draws every image; New-SDImageGrid sets its text in the bundled font.
    $skiaName = if ($IsWindows) { 'libSkiaSharp.dll' } elseif ($IsMacOS) { 'libSkiaSharp.dylib' } else { 'libSkiaSharp.so' }
    foreach ($file in $skiaName, 'Data/fonts/DejaVuSans.ttf', 'Data/fonts/DejaVuSans-LICENSE.txt') {
        if (-not (Test-Path (Join-Path $ModuleOut $file))) { throw "$file is missing from $ModuleOut." }
    }
    # PowerShellStandard.Library is compile-time only; its reference assembly in the output breaks the module.
    if (Test-Path (Join-Path $ModuleOut 'System.Management.Automation.dll')) {
        throw "System.Management.Automation.dll is in $ModuleOut; reference PowerShellStandard.Library with ExcludeAssets=runtime."
    }
}

# Imports the built module in a fresh pwsh, with an empty NuGet cache so that only the module folder can supply
# natives: warns about cmdlets the manifest lists that the assembly lacks, fails on cmdlets the assembly has that
# the manifest does not export, and loads libtorch through Get-SDDevice.
function Test-ModuleImport {
    Write-Step 'Importing the built module in a fresh pwsh'
    $script = @'
$ErrorActionPreference = 'Stop'
$module = Import-Module $env:SD_MODULE_PATH -PassThru
$listed = @((Import-PowerShellDataFile (Join-Path $env:SD_MODULE_PATH 'PSStableDiffusion.psd1')).CmdletsToExport)
$implemented = @($module.ImplementingAssembly.GetExportedTypes() |
    Where-Object { -not $_.IsAbstract } |
    ForEach-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
    ForEach-Object { "$($_.VerbName)-$($_.NounName)" })
$notYet = @($listed | Where-Object { $_ -notin $implemented })
if ($notYet) { Write-Warning "The manifest lists cmdlets that PSStableDiffusion.dll does not implement yet: $($notYet -join ', ')" }
$unlisted = @($implemented | Where-Object { $_ -notin $listed })
if ($unlisted) { Write-Error "PSStableDiffusion.dll implements cmdlets missing from CmdletsToExport in PSStableDiffusion.psd1: $($unlisted -join ', ')" }
$cpu = Get-SDDevice -Type cpu
"Module ready: $($module.Name) $($module.Version), TorchSharp $($cpu.TorchSharpVersion), libtorch $($cpu.LibTorchVersion), backend $($cpu.Backend), cmdlets: $(@($module.ExportedCmdlets.Keys | Sort-Object) -join ', ')"
'@
    $code = Invoke-ChildPwsh -Script $script -Environment @{
        SD_MODULE_PATH = $ModuleOut
        NUGET_PACKAGES = Get-EmptyNuGetFolder
    }
    if ($code -ne 0) { throw "The built module at $ModuleOut failed to import or to load libtorch (exit code $code)." }
}

#endregion

#region Test

# Counts from one suite. Skipped and not-run tests are kept apart so the summary can say what they were; they are
# added to the failures, because a test that did not run proves nothing.
function New-SuiteResult([string] $Name) {
    [pscustomobject]@{ Name = $Name; Passed = 0; Failed = 0; Skipped = 0; Problems = [Collections.Generic.List[string]]::new() }
}

function Invoke-XunitTests {
    $result = New-SuiteResult 'xunit (tests/Engine.Tests)'
    $resultsDir = Join-Path $TestResults 'engine'
    if (Test-Path $resultsDir) { Remove-Item $resultsDir -Recurse -Force }
    $trxPath = Join-Path $resultsDir 'engine.trx'

    Write-Step 'Running xunit engine tests'
    $code = Invoke-Dotnet @(
        'test', (Join-Path $RepoRoot 'tests/Engine.Tests/PSStableDiffusion.Engine.Tests.csproj'),
        '--configuration', $Configuration, "-p:SDBackend=$Backend",
        '--logger', 'trx;LogFileName=engine.trx', '--logger', 'console;verbosity=normal',
        '--results-directory', $resultsDir, '-nologo')

    if (-not (Test-Path $trxPath)) {
        $result.Failed++
        $result.Problems.Add("no TRX report at $trxPath (dotnet test exit code $code): the tests did not build or run")
        return $result
    }
    $trx = [xml](Get-Content -LiteralPath $trxPath -Raw)
    foreach ($test in @($trx.SelectNodes("//*[local-name()='UnitTestResult']"))) {
        switch ($test.outcome) {
            'Passed' { $result.Passed++ }
            { $_ -in 'Failed', 'Error', 'Timeout', 'Aborted' } {
                $result.Failed++
                $result.Problems.Add("failed: $($test.testName)")
            }
            default {
                $result.Skipped++
                $result.Problems.Add("$($test.outcome.ToLowerInvariant()): $($test.testName)")
            }
        }
    }
    if ($result.Passed + $result.Failed + $result.Skipped -eq 0) {
        $result.Failed++
        $result.Problems.Add('the TRX report holds no test results')
    }
    elseif ($code -ne 0 -and $result.Failed -eq 0) {
        # e.g. the test host crashed after some tests had reported
        $result.Failed++
        $result.Problems.Add("dotnet test exited with code $code although no test failed")
    }
    $result
}

function Get-PesterModulePath {
    $toolsProject = Join-Path $RepoRoot 'tests/tools/PesterTools.csproj'
    $version = ([xml](Get-Content -LiteralPath $toolsProject -Raw)).Project.PropertyGroup.PesterVersion |
        Where-Object { $_ } | Select-Object -First 1
    # The tools project downloads Pester from NuGet into the packages folder; restore is a no-op once it is there.
    $code = Invoke-Dotnet @('restore', $toolsProject, '-nologo', '--verbosity', 'quiet')
    if ($code -ne 0) { throw "dotnet restore $toolsProject failed with exit code $code." }
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path ([Environment]::GetFolderPath('UserProfile')) '.nuget/packages' }
    $psd1 = Join-Path $packages "pester/$version/tools/Pester.psd1"
    if (-not (Test-Path $psd1)) { throw "Pester $version was restored but $psd1 does not exist." }
    $psd1
}

function Invoke-PesterTests {
    $result = New-SuiteResult 'Pester (tests/Pester)'
    $resultsDir = Join-Path $TestResults 'pester'
    if (Test-Path $resultsDir) { Remove-Item $resultsDir -Recurse -Force }
    New-Item -ItemType Directory -Path $resultsDir | Out-Null
    $summaryPath = Join-Path $resultsDir 'summary.json'

    Write-Step 'Running Pester module tests in a fresh pwsh'
    $pester = Get-PesterModulePath
    $runner = Join-Path $RepoRoot 'tests/Pester/Invoke-PesterSuite.ps1'
    $script = "& '$($runner -replace "'", "''")'"
    $code = Invoke-ChildPwsh -Script $script -Environment @{
        SD_MODULE_PATH    = $ModuleOut
        SD_PESTER_PATH    = $pester
        SD_RESULTS_FOLDER = $resultsDir
        SD_BACKEND        = $Backend
        NUGET_PACKAGES    = Get-EmptyNuGetFolder
    }

    if (-not (Test-Path $summaryPath)) {
        $result.Failed++
        $result.Problems.Add("no summary at $summaryPath (child pwsh exit code $code): Pester did not run")
        return $result
    }
    $summary = Get-Content -LiteralPath $summaryPath -Raw | ConvertFrom-Json
    $result.Passed = $summary.Passed
    $result.Failed = $summary.Failed + $summary.FailedBlocks + $summary.FailedContainers
    $result.Skipped = $summary.Skipped + $summary.NotRun + $summary.Inconclusive
    foreach ($problem in @($summary.Problems)) { if ($problem) { $result.Problems.Add($problem) } }
    if ($result.Passed + $result.Failed + $result.Skipped -eq 0) {
        $result.Failed++
        $result.Problems.Add('Pester found no tests')
    }
    $result
}

function Invoke-AllTests {
    $suites = [Collections.Generic.List[object]]::new()
    try {
        Build-Module | Out-Host
    }
    catch {
        Write-Host "Build failed: $($_.Exception.Message)" -ForegroundColor Red
        $build = New-SuiteResult 'build'
        $build.Failed = 1
        $build.Problems.Add($_.Exception.Message)
        $suites.Add($build)
    }
    if ($suites.Count -eq 0) {
        # The model-hash cache of the tests' models goes under out/, not into the user's profile.
        $env:PSSTABLEDIFFUSION_CACHE = Join-Path $OutRoot 'test-cache'
        foreach ($suite in 'Invoke-XunitTests', 'Invoke-PesterTests') {
            try { $suites.Add((& $suite)) }
            catch {
                $broken = New-SuiteResult $suite
                $broken.Failed = 1
                $broken.Problems.Add($_.Exception.Message)
                $suites.Add($broken)
            }
        }
    }

    Write-Host ''
    Write-Step 'Summary'
    foreach ($suite in $suites) {
        Write-Host ("{0}: {1} passed, {2} failed, {3} skipped or not run" -f $suite.Name, $suite.Passed, $suite.Failed, $suite.Skipped)
        foreach ($problem in $suite.Problems) { Write-Host "    $problem" -ForegroundColor Yellow }
    }
    $passed = ($suites | Measure-Object -Property Passed -Sum).Sum
    $skipped = ($suites | Measure-Object -Property Skipped -Sum).Sum
    $failed = ($suites | Measure-Object -Property Failed -Sum).Sum + $skipped
    if ($skipped -gt 0) { Write-Host "$skipped skipped or not-run test(s) are counted as failed." -ForegroundColor Yellow }
    # The one line CI reads: keep it last and keep its shape.
    [Console]::Out.WriteLine("$passed passed, $failed failed")
    [int]($failed -gt 0)
}

#endregion

#region Package

function New-ModulePackage {
    if ($LibTorch) {
        throw '-Package makes a package that carries its natives; a -LibTorch build loads libtorch from a folder of this machine. Build the package without -LibTorch (and $env:PSSTABLEDIFFUSION_LIBTORCH unset).'
    }
    Build-Module
    $version = (Import-PowerShellDataFile (Join-Path $ModuleOut "$ModuleName.psd1")).ModuleVersion
    # One package per platform and backend: it carries that platform's libtorch natives (see README, "Installing").
    $packageFolder = Join-Path $OutRoot "packages/$(Get-RuntimeId)-$Backend"
    if (Test-Path $packageFolder) { Remove-Item $packageFolder -Recurse -Force }
    New-Item -ItemType Directory -Path $packageFolder | Out-Null
    Write-Step "Packaging $ModuleName $version into $packageFolder (Publish-PSResource to a local repository)"
    # A repository of this run only, removed afterwards: Publish-PSResource writes the .nupkg into it.
    $repository = "PSStableDiffusionBuild$PID"
    Register-PSResourceRepository -Name $repository -Uri $packageFolder -Trusted
    try {
        Publish-PSResource -Path $ModuleOut -Repository $repository
    }
    finally {
        Unregister-PSResourceRepository -Name $repository
    }
    $nupkg = Get-ChildItem -LiteralPath $packageFolder -Filter '*.nupkg' | Select-Object -First 1
    if (-not $nupkg) { throw "Publish-PSResource wrote no .nupkg into $packageFolder." }
    Write-Host ("Package: {0} ({1:N0} MB). Install it with:" -f $nupkg.FullName, ($nupkg.Length / 1MB))
    Write-Host "  Register-PSResourceRepository -Name SDLocal -Uri '$packageFolder' -Trusted; Install-PSResource PSStableDiffusion -Repository SDLocal"
}

#endregion

#region Generate

function Invoke-Generation {
    $modelPath = if ($Model) { $Model } elseif ($env:SD_MODEL) { $env:SD_MODEL } else { Join-Path $RepoRoot 'tests/golden/txt2img_v/model' }
    if (-not $Model -and -not $env:SD_MODEL) {
        Write-Host 'No -Model or $env:SD_MODEL: using the tiny random-weight test model (tests/golden/txt2img_v), whose images are coloured noise. Pass -Model <diffusers folder | .safetensors | hub id> for real pictures.' -ForegroundColor Yellow
    }
    Write-Step "Generating '$Prompt' with $modelPath"
    $script = @'
$ErrorActionPreference = 'Stop'
Import-Module $env:SD_MODULE_PATH
$image = New-SDImage -Model $env:SD_GEN_MODEL -Prompt $env:SD_GEN_PROMPT -Seed 42 -Steps 25 -Verbose
$file = $image | Save-SDImage -Path (Join-Path $env:SD_GEN_OUT '{Seed}-{Index}.png') -Force
$image | Format-Table | Out-String | Write-Host
"Saved $($file.FullName)"
'@
    $code = Invoke-ChildPwsh -Script $script -Environment @{
        SD_MODULE_PATH = $ModuleOut
        SD_GEN_MODEL   = $modelPath
        SD_GEN_PROMPT  = $Prompt
        SD_GEN_OUT     = [IO.Path]::GetFullPath($OutputPath, $RepoRoot)
    }
    if ($code -ne 0) { throw "Generation failed (exit code $code)." }
}

#endregion

switch ($PSCmdlet.ParameterSetName) {
    'Build' { Build-Module; Write-Host "Built $ModuleOut. Import it with: Import-Module $ModuleOut" }
    'Test' { exit (Invoke-AllTests) }
    'Package' { New-ModulePackage }
    'Generate' { Build-Module; Invoke-Generation }
}
