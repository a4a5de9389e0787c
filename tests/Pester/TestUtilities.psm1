# Shared helpers for the Pester tests of PSStableDiffusion. Import with:
#     Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force

Set-StrictMode -Version 3.0

$script:RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
$script:ModuleName = 'PSStableDiffusion'

# Cmdlets the manifest lists ahead of their implementation. Remove a name in the same change that implements its
# cmdlet: Module.Tests.ps1 fails while an implemented cmdlet is still here, so this list can only shrink.
$script:PendingCmdlets = @(
    'Clear-SDEngine'
    'Get-SDEngine'
    'Import-SDImage'
    'New-SDImage'
    'Save-SDImage'
)

function Get-SDRepoRoot {
    $script:RepoRoot
}

# The built module folder under test: $env:SD_MODULE_PATH (set by build.ps1 -Test), else out/PSStableDiffusion.
function Get-SDModulePath {
    $path = if ($env:SD_MODULE_PATH) { $env:SD_MODULE_PATH } else { Join-Path $script:RepoRoot "out/$script:ModuleName" }
    if (-not (Test-Path -LiteralPath (Join-Path $path "$script:ModuleName.psd1"))) {
        throw "No built module at '$path'. Run: dotnet pwsh ./build.ps1"
    }
    (Resolve-Path -LiteralPath $path).Path
}

# Imports the built module into the global scope and returns it. Refuses a copy loaded from another folder: a binary
# module cannot be unloaded, so the tests would silently run against the wrong build.
function Import-SDModule {
    $path = Get-SDModulePath
    $loaded = Get-Module $script:ModuleName
    if ($loaded -and $loaded.ModuleBase -ne $path) {
        throw "$script:ModuleName is already loaded from '$($loaded.ModuleBase)', not '$path'. Run the tests in a fresh pwsh."
    }
    Import-Module $path -Global -PassThru
}

# The source manifest's data (PSStableDiffusion.psd1 at the repository root).
function Get-SDSourceManifest {
    Import-PowerShellDataFile -LiteralPath (Join-Path $script:RepoRoot "$script:ModuleName.psd1")
}

function Get-SDPendingCmdlet {
    $script:PendingCmdlets
}

# Names (Verb-Noun) of the cmdlet classes that the module's assembly implements, whether or not they are exported.
function Get-SDImplementedCmdlet {
    param([Parameter(Mandatory)] [psmoduleinfo] $Module)
    $Module.ImplementingAssembly.GetExportedTypes() |
        Where-Object { -not $_.IsAbstract } |
        ForEach-Object { $_.GetCustomAttributes([System.Management.Automation.CmdletAttribute], $false) } |
        ForEach-Object { "$($_.VerbName)-$($_.NounName)" } |
        Sort-Object
}

# tests/golden/<Case>: the diffusers reference data for one pipeline case (see tests/golden/README.md).
function Get-SDGoldenCasePath {
    param([Parameter(Mandatory)] [string] $Case)
    $path = Join-Path $script:RepoRoot "tests/golden/$Case"
    if (-not (Test-Path -LiteralPath (Join-Path $path 'case.json'))) {
        throw "Golden case '$Case' not found: '$path' has no case.json."
    }
    $path
}

# tests/golden/<Case>/model: a tiny diffusers pipeline folder to pass to the cmdlets' -Model parameter.
function Get-SDGoldenModelPath {
    param([Parameter(Mandatory)] [string] $Case)
    $path = Join-Path (Get-SDGoldenCasePath -Case $Case) 'model'
    if (-not (Test-Path -LiteralPath (Join-Path $path 'model_index.json'))) {
        throw "Golden case '$Case' has no diffusers model folder at '$path'."
    }
    $path
}

# The parsed case.json of a golden case (the call's prompt, steps, seed, tolerances...).
function Get-SDGoldenCase {
    param([Parameter(Mandatory)] [string] $Case)
    Get-Content -Raw -LiteralPath (Join-Path (Get-SDGoldenCasePath -Case $Case) 'case.json') | ConvertFrom-Json
}

# A new empty folder under the system temp folder, for tests that need a real path outside Pester's TestDrive
# (e.g. to hand to a child process). Remove it with Remove-SDTestDirectory in AfterAll/AfterEach.
function New-SDTestDirectory {
    param([string] $Prefix = 'test')
    $path = Join-Path ([IO.Path]::GetTempPath()) "PSStableDiffusion.Tests/$Prefix-$([guid]::NewGuid().ToString('N').Substring(0, 12))"
    New-Item -ItemType Directory -Path $path -Force
}

function Remove-SDTestDirectory {
    param([Parameter(Mandatory, ValueFromPipeline)] [object] $Path)
    process {
        $full = if ($Path -is [IO.FileSystemInfo]) { $Path.FullName } else { [string] $Path }
        $root = Join-Path ([IO.Path]::GetTempPath()) 'PSStableDiffusion.Tests'
        if (-not $full.StartsWith($root, [StringComparison]::Ordinal)) {
            throw "Refusing to remove '$full': not a folder made by New-SDTestDirectory."
        }
        Remove-Item -LiteralPath $full -Recurse -Force -ErrorAction Ignore
    }
}

Export-ModuleMember -Function *-SD*
