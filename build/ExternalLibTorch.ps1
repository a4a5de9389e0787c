# build.ps1 -LibTorch <folder>: a module that loads libtorch from an installed folder (a libtorch archive, or the
# torch package of a Python install) instead of carrying the TorchSharp-cpu/-cuda natives. Dot-sourced by build.ps1
# and by tests/Pester/Build. The engine side is src/Engine/Runtime/LibTorchFolder.cs; the file names and the settings
# file here must match it.

$script:LibTorchSettingsFileName = 'PSStableDiffusion.LibTorch.json'

# The libtorch libraries the module loads from the folder; a module built with -LibTorch carries none of them.
$script:BundledLibTorchNatives = '^(lib)?(c10|c10_cuda|torch|torch_cpu|torch_cuda|gomp(-[0-9a-f]+)?|torch_global_deps)\.(so(\.\d+)*|dll|dylib)$'

function Get-LibTorchFileName([string] $Library) {
    if ($IsWindows) { "$Library.dll" } elseif ($IsMacOS) { "lib$Library.dylib" } else { "lib$Library.so" }
}

# The folder that holds the libraries: lib/ under a libtorch root or Python's torch package, else the folder itself.
function Get-LibTorchLibraryFolder([string] $Folder) {
    $lib = Join-Path $Folder 'lib'
    if (Test-Path -LiteralPath (Join-Path $lib (Get-LibTorchFileName 'c10'))) { $lib } else { $Folder }
}

# The version a libtorch folder states: build-version (libtorch archive) or version.py (Python's torch package).
function Get-LibTorchVersion([string] $Folder) {
    foreach ($root in $Folder, (Split-Path -Parent $Folder)) {
        if (-not $root) { continue }
        $buildVersion = Join-Path $root 'build-version'
        if (Test-Path -LiteralPath $buildVersion) { return (Get-Content -LiteralPath $buildVersion -Raw).Trim() }
        $versionPy = Join-Path $root 'version.py'
        if ((Test-Path -LiteralPath $versionPy) -and ((Get-Content -LiteralPath $versionPy -Raw) -match "(?m)^__version__\s*=\s*['""]([^'""]+)['""]")) {
            return $Matches[1]
        }
    }
    $null
}

# libtorch's CMake package folder (for building LibTorchSharp): share/cmake/Torch under the folder or its parent.
function Get-LibTorchCMakePrefix([string] $Folder) {
    foreach ($root in $Folder, (Split-Path -Parent $Folder)) {
        if ($root -and (Test-Path -LiteralPath (Join-Path $root 'share/cmake/Torch/TorchConfig.cmake'))) { return $root }
    }
    $null
}

<#
Checks the -LibTorch options before anything is built and says what will be used. Throws, naming the folder and
the fix, when the folder is missing, holds no libtorch, holds no libtorch_cuda for -Backend cuda, or no
LibTorchSharp fits it.
LibTorchSharp: -LibTorchSharp <file> (built already), else -TorchSharpSource <TorchSharp checkout or its src/Native>
(built here with CMake), else the TorchSharp package's own, which fits libtorch 2.10 only.
#>
function Resolve-ExternalLibTorch {
    param(
        [Parameter(Mandatory)] [string] $Folder,
        [Parameter(Mandatory)] [ValidateSet('cpu', 'cuda')] [string] $Backend,
        [string] $LibTorchSharp,
        [string] $TorchSharpSource
    )
    if (-not (Test-Path -LiteralPath $Folder -PathType Container)) {
        throw "The -LibTorch folder '$Folder' does not exist. Give the folder of a libtorch archive, or Python's torch package folder (python -c `"import torch, os; print(os.path.dirname(torch.__file__))`")."
    }
    $Folder = (Resolve-Path -LiteralPath $Folder).ProviderPath
    $libraries = Get-LibTorchLibraryFolder $Folder
    $missing = @('c10', 'torch_cpu' | ForEach-Object { Get-LibTorchFileName $_ } | Where-Object { -not (Test-Path -LiteralPath (Join-Path $libraries $_)) })
    if ($missing) {
        throw "The -LibTorch folder '$Folder' holds no libtorch: $($missing -join ', ') not found in $libraries."
    }
    $cuda = Get-LibTorchFileName 'torch_cuda'
    if ($Backend -eq 'cuda' -and -not (Test-Path -LiteralPath (Join-Path $libraries $cuda))) {
        throw "-Backend cuda: the libtorch in '$Folder' has no CUDA support ($cuda not found in $libraries). Give a CUDA build of libtorch, or use -Backend cpu."
    }
    $version = Get-LibTorchVersion $libraries
    $shim = [pscustomobject]@{ Kind = 'package'; Path = $null; Native = $null; CMakePrefix = $null }
    if ($LibTorchSharp) {
        if (-not (Test-Path -LiteralPath $LibTorchSharp -PathType Leaf)) { throw "The -LibTorchSharp file '$LibTorchSharp' does not exist." }
        $shim.Kind = 'file'
        $shim.Path = (Resolve-Path -LiteralPath $LibTorchSharp).ProviderPath
    }
    elseif ($TorchSharpSource) {
        $native = @($TorchSharpSource, (Join-Path $TorchSharpSource 'src/Native')) |
            Where-Object { Test-Path -LiteralPath (Join-Path $_ 'LibTorchSharp/CMakeLists.txt') } | Select-Object -First 1
        if (-not $native) { throw "-TorchSharpSource '$TorchSharpSource' is not a TorchSharp checkout (no src/Native/LibTorchSharp/CMakeLists.txt)." }
        $prefix = Get-LibTorchCMakePrefix $libraries
        if (-not $prefix) { throw "Building LibTorchSharp needs libtorch's CMake files (share/cmake/Torch/TorchConfig.cmake), which '$Folder' lacks." }
        $shim.Kind = 'build'
        $shim.Native = (Resolve-Path -LiteralPath $native).ProviderPath
        $shim.CMakePrefix = $prefix
    }
    elseif (-not ($version -like '2.10.*')) {
        $stated = if ($version) { "libtorch $version" } else { 'a libtorch whose version the folder does not state' }
        throw "'$Folder' holds $stated; the TorchSharp package's LibTorchSharp fits libtorch 2.10 only. Pass -TorchSharpSource <TorchSharp v0.107.0 checkout> to build one for it (CMake and a C++ compiler needed), or -LibTorchSharp <file> built already."
    }
    [pscustomobject]@{
        Folder         = $Folder
        LibraryFolder  = $libraries
        Backend        = $Backend
        Version        = $version
        LibTorchSharp  = $shim
    }
}

# Builds LibTorchSharp against the resolved libtorch with build/native/CMakeLists.txt; returns the library's path.
function Build-LibTorchSharp {
    param(
        [Parameter(Mandatory)] $Resolved,
        [Parameter(Mandatory)] [string] $WorkFolder
    )
    if (-not (Get-Command cmake -ErrorAction Ignore)) { throw 'Building LibTorchSharp needs CMake (cmake on PATH).' }
    $source = Join-Path $PSScriptRoot 'native'
    $binary = Join-Path $WorkFolder 'cmake'
    $install = Join-Path $WorkFolder 'lib'
    $configure = @('-S', $source, '-B', $binary, '-DCMAKE_BUILD_TYPE=Release',
        "-DTORCHSHARP_NATIVE=$($Resolved.LibTorchSharp.Native)", "-DCMAKE_PREFIX_PATH=$($Resolved.LibTorchSharp.CMakePrefix)")
    if (Get-Command ninja -ErrorAction Ignore) { $configure += '-G', 'Ninja' }
    foreach ($arguments in $configure, @('--build', $binary, '--config', 'Release', '--parallel'), @('--install', $binary, '--config', 'Release', '--prefix', $install)) {
        Write-Host "cmake $($arguments -join ' ')" -ForegroundColor DarkGray
        & cmake @arguments | Out-Host
        if ($LASTEXITCODE -ne 0) { throw "cmake $($arguments[0]) failed with exit code $LASTEXITCODE while building LibTorchSharp." }
    }
    $name = if ($IsWindows) { 'LibTorchSharp.dll' } elseif ($IsMacOS) { 'libLibTorchSharp.dylib' } else { 'libLibTorchSharp.so' }
    $built = Join-Path $install $name
    if (-not (Test-Path -LiteralPath $built)) { throw "cmake built no $name in $install." }
    $built
}

# Makes a laid-out module folder use the resolved libtorch: no libtorch natives of its own, the LibTorchSharp that
# fits, and the settings file the engine reads.
function Install-ExternalLibTorch {
    param(
        [Parameter(Mandatory)] [string] $ModuleFolder,
        [Parameter(Mandatory)] $Resolved,
        [string] $LibTorchSharpPath
    )
    Get-ChildItem -LiteralPath $ModuleFolder -File | Where-Object Name -Match $script:BundledLibTorchNatives | Remove-Item -Force
    if ($LibTorchSharpPath) {
        Copy-Item -LiteralPath $LibTorchSharpPath -Destination $ModuleFolder -Force
    }
    $settings = [ordered]@{ folder = $Resolved.Folder; backend = $Resolved.Backend; version = $Resolved.Version }
    $settings | ConvertTo-Json | Set-Content -LiteralPath (Join-Path $ModuleFolder $script:LibTorchSettingsFileName) -Encoding utf8NoBOM
}
