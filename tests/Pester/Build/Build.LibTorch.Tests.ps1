# build.ps1 -LibTorch <folder>: a module that loads libtorch from an installed folder (see README, "CUDA with your own
# libtorch"). Checked on the CPU: the build script refuses a wrong folder before building anything; a module laid out
# as -LibTorch lays it out (build/ExternalLibTorch.ps1) loads libtorch from that folder and paints the golden image;
# a module built for CUDA whose folder holds no libtorch_cuda fails with LibTorchCudaNotFound. The libtorch folder
# here is this build's own libtorch 2.10 natives, hard-linked into a folder of their own (the module then has none).

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:repoRoot = Get-SDRepoRoot
    $script:builtModule = Get-SDModulePath
    . (Join-Path $repoRoot 'build/ExternalLibTorch.ps1')

    # Runs build.ps1 with these arguments in a fresh pwsh; returns its exit code and output.
    function Invoke-BuildScript([string[]] $Arguments) {
        $executable = [Environment]::ProcessPath
        $hostArguments = @()
        # Running as a dotnet tool: the host is dotnet and PowerShell itself is pwsh.dll in $PSHOME.
        if ([IO.Path]::GetFileNameWithoutExtension($executable) -eq 'dotnet') { $hostArguments += Join-Path $PSHOME 'pwsh.dll' }
        $output = & $executable @hostArguments -NoProfile -NonInteractive -File (Join-Path $repoRoot 'build.ps1') @Arguments 2>&1 | Out-String
        # The error view wraps long messages over lines that start with '|': join them back into one line.
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($output -replace '\r?\n\s*\|\s*', ' ') -replace '\s+', ' ' }
    }

    # A folder shaped like a libtorch archive, with empty files named as these libraries (nothing loads them).
    function New-FakeLibTorch([string] $Name, [string[]] $Libraries, [string] $Version) {
        $lib = Join-Path $TestDrive "$Name/lib"
        New-Item -ItemType Directory -Path $lib -Force | Out-Null
        foreach ($library in $Libraries) { New-Item -ItemType File -Path (Join-Path $lib (Get-LibTorchFileName $library)) -Force | Out-Null }
        if ($Version) { Set-Content -LiteralPath (Join-Path $TestDrive "$Name/build-version") -Value $Version }
        Join-Path $TestDrive $Name
    }

    # The built module split in two: the libtorch libraries (hard links) in <Name>/libtorch/lib, everything else in
    # <Name>/PSStableDiffusion, laid out by the same function build.ps1 -LibTorch uses.
    function New-SplitModule([string] $Name, [string] $Backend, [string] $LibTorchFolder) {
        $root = Join-Path $TestDrive $Name
        $module = Join-Path $root 'PSStableDiffusion'
        $libtorch = Join-Path $root 'libtorch'
        foreach ($file in Get-ChildItem -LiteralPath $builtModule -File -Recurse) {
            $relative = [IO.Path]::GetRelativePath($builtModule, $file.FullName)
            $isLibTorch = $relative -notmatch '[\\/]' -and $file.Name -match $script:BundledLibTorchNatives
            $target = if ($isLibTorch) { Join-Path $libtorch "lib/$relative" } else { Join-Path $module $relative }
            New-Item -ItemType Directory -Path (Split-Path $target) -Force | Out-Null
            New-Item -ItemType HardLink -Path $target -Target $file.FullName | Out-Null
        }
        # The NuGet libtorch-cpu natives are libtorch 2.10.0, which the TorchSharp package's LibTorchSharp fits.
        Set-Content -LiteralPath (Join-Path $libtorch 'build-version') -Value '2.10.0'
        $resolved = if ($LibTorchFolder) {
            [pscustomobject]@{ Folder = $LibTorchFolder; Backend = $Backend; Version = $null }
        }
        else {
            Resolve-ExternalLibTorch -Folder $libtorch -Backend $Backend
        }
        Install-ExternalLibTorch -ModuleFolder $module -Resolved $resolved
        [pscustomobject]@{ Module = $module; LibTorch = $libtorch }
    }
}

Describe 'build.ps1 -LibTorch' {
    Context 'the arguments, checked before anything is built' {
        It 'refuses a folder that does not exist' {
            $missing = Join-Path $TestDrive 'no-such-libtorch'
            $result = Invoke-BuildScript @('-LibTorch', $missing)
            $result.ExitCode | Should -Not -Be 0
            $result.Output | Should -Match ([regex]::Escape("The -LibTorch folder '$missing' does not exist"))
            $result.Output | Should -Not -Match 'Publishing'
        }

        It 'refuses -Backend cuda with a libtorch that has no libtorch_cuda, naming the folder and the file' {
            $folder = New-FakeLibTorch -Name cpu-only -Libraries c10, torch_cpu, torch -Version 2.10.0
            $result = Invoke-BuildScript @('-Backend', 'cuda', '-LibTorch', $folder)
            $result.ExitCode | Should -Not -Be 0
            $result.Output | Should -Match ([regex]::Escape("the libtorch in '$folder' has no CUDA support ($(Get-LibTorchFileName torch_cuda) not found"))
            $result.Output | Should -Not -Match 'Publishing'
        }

        It 'takes the folder from $env:PSSTABLEDIFFUSION_LIBTORCH when -LibTorch is not given' {
            $folder = New-FakeLibTorch -Name from-env -Libraries c10 -Version 2.10.0
            $saved = $env:PSSTABLEDIFFUSION_LIBTORCH
            try {
                $env:PSSTABLEDIFFUSION_LIBTORCH = $folder
                $result = Invoke-BuildScript @('-Backend', 'cpu')
            }
            finally { $env:PSSTABLEDIFFUSION_LIBTORCH = $saved }
            $result.ExitCode | Should -Not -Be 0
            $result.Output | Should -Match ([regex]::Escape("The -LibTorch folder '$folder' holds no libtorch: $(Get-LibTorchFileName torch_cpu) not found"))
        }
    }

    Context 'which LibTorchSharp a libtorch gets (Resolve-ExternalLibTorch)' {
        It 'uses the TorchSharp package''s LibTorchSharp for libtorch 2.10 only' {
            $fits = Resolve-ExternalLibTorch -Folder (New-FakeLibTorch -Name v210 -Libraries c10, torch_cpu, c10_cuda, torch_cuda -Version 2.10.0+cu128) -Backend cuda
            $fits.LibTorchSharp.Kind | Should -Be 'package'
            $fits.LibraryFolder | Should -Be (Join-Path $TestDrive 'v210/lib')
            $newer = New-FakeLibTorch -Name v211 -Libraries c10, torch_cpu, c10_cuda, torch_cuda -Version 2.11.0+cu130
            { Resolve-ExternalLibTorch -Folder $newer -Backend cuda } | Should -Throw '*holds libtorch 2.11.0+cu130*-TorchSharpSource*'
        }

        It 'builds LibTorchSharp from -TorchSharpSource only where libtorch''s CMake files are, and takes a built -LibTorchSharp as it is' {
            $folder = New-FakeLibTorch -Name cmake -Libraries c10, torch_cpu -Version 2.11.0
            $source = Join-Path $TestDrive 'TorchSharp'
            New-Item -ItemType File -Path (Join-Path $source 'src/Native/LibTorchSharp/CMakeLists.txt') -Force | Out-Null
            { Resolve-ExternalLibTorch -Folder $folder -Backend cpu -TorchSharpSource $source } | Should -Throw '*share/cmake/Torch/TorchConfig.cmake*'
            New-Item -ItemType File -Path (Join-Path $folder 'share/cmake/Torch/TorchConfig.cmake') -Force | Out-Null
            $build = Resolve-ExternalLibTorch -Folder $folder -Backend cpu -TorchSharpSource $source
            $build.LibTorchSharp.Kind | Should -Be 'build'
            $build.LibTorchSharp.Native | Should -Be (Join-Path $source 'src/Native')
            $build.LibTorchSharp.CMakePrefix | Should -Be $folder
            { Resolve-ExternalLibTorch -Folder $folder -Backend cpu -TorchSharpSource $TestDrive } | Should -Throw '*is not a TorchSharp checkout*'

            $shim = New-Item -ItemType File -Path (Join-Path $TestDrive 'built/libLibTorchSharp.so') -Force
            $given = Resolve-ExternalLibTorch -Folder $folder -Backend cpu -LibTorchSharp $shim.FullName
            $given.LibTorchSharp.Kind | Should -Be 'file'
            $given.LibTorchSharp.Path | Should -Be $shim.FullName
        }
    }

    Context 'a module that loads libtorch from the folder' {
        BeforeAll {
            $script:split = New-SplitModule -Name split -Backend cpu
            $script:call = Get-SDGoldenCall -Case txt2img_eps_dpmpp
            $script:png = Join-Path $TestDrive 'split.png'
            $job = Start-Job -ScriptBlock {
                param($Module, $Call, $Png)
                $ErrorActionPreference = 'Stop'
                Import-Module $Module
                $device = Get-SDDevice -Type cpu
                $image = New-SDImage @Call -Precision Float32
                $null = $image | Save-SDImage -Path $Png
                [pscustomobject]@{
                    Folder  = $device.LibTorchFolder
                    Version = $device.LibTorchVersion
                    # Where the process really mapped libtorch from (hard links keep the path they were opened by).
                    Mapped  = if ($IsLinux) {
                        @(Get-Content /proc/self/maps | ForEach-Object { ($_ -split '\s+', 6)[5] } |
                            Where-Object { $_ -match '/lib(c10|torch_cpu|torch|LibTorchSharp)\.so$' } | Sort-Object -Unique)
                    }
                }
            } -ArgumentList $split.Module, $call, $png
            $script:child = $job | Receive-Job -Wait -AutoRemoveJob -ErrorAction Stop
        }

        It 'holds no libtorch of its own and records the folder in its settings file' {
            @(Get-ChildItem -LiteralPath $split.Module -File | Where-Object Name -Match $script:BundledLibTorchNatives) | Should -BeNullOrEmpty
            $settings = Get-Content -Raw -LiteralPath (Join-Path $split.Module 'PSStableDiffusion.LibTorch.json') | ConvertFrom-Json
            $settings.folder | Should -Be $split.LibTorch
            $settings.backend | Should -Be 'cpu'
        }

        It 'maps libtorch from that folder and LibTorchSharp from the module, and Get-SDDevice says so' {
            $child.Folder | Should -Be (Join-Path $split.LibTorch 'lib')
            $child.Version | Should -Be '2.10.0'
            if (-not $IsLinux) { return } # the process's mappings are read from /proc
            $libraries = @($child.Mapped | Where-Object { $_ -notmatch 'LibTorchSharp' })
            $libraries.Count | Should -Be 3
            $libraries | ForEach-Object { $_ | Should -BeLike "$(Join-Path $split.LibTorch 'lib')*" }
            @($child.Mapped | Where-Object { $_ -match 'LibTorchSharp' }) | Should -Be @(Join-Path $split.Module 'libLibTorchSharp.so')
        }

        It 'paints the golden image: expected.png of txt2img_eps_dpmpp within the case tolerance' {
            $expected = Read-SDTestPng (Join-Path (Get-SDGoldenCasePath -Case txt2img_eps_dpmpp) 'expected.png')
            $actual = Read-SDTestPng $png
            Get-SDPixelDifference $expected.Pixels $actual.Pixels | Should -BeLessOrEqual (Get-SDGoldenTolerance -Case txt2img_eps_dpmpp -Name image_uint8)
        }
    }

    Context 'a module built for CUDA whose folder holds no libtorch_cuda' {
        It 'fails every cmdlet with LibTorchCudaNotFound (NotInstalled) naming the folder, and loads nothing' {
            $cpuOnly = New-FakeLibTorch -Name no-cuda -Libraries c10, torch_cpu, torch -Version 2.10.0
            $split = New-SplitModule -Name cuda-without-cuda -Backend cuda -LibTorchFolder $cpuOnly
            $errors = Start-Job -ScriptBlock {
                param($Module)
                Import-Module $Module
                foreach ($command in { Get-SDDevice }, { New-SDImage -Prompt 'x' -Model (Join-Path $HOME 'none') }) {
                    try { & $command; 'no error' }
                    catch {
                        [pscustomobject]@{
                            Id       = $_.FullyQualifiedErrorId
                            Category = "$($_.CategoryInfo.Category)"
                            Target   = "$($_.TargetObject)"
                            Message  = $_.Exception.Message
                            Action   = $_.ErrorDetails.RecommendedAction
                            Loaded   = if ($IsLinux) { @(Get-Content /proc/self/maps | Where-Object { $_ -match 'libtorch_cpu\.(so|dll)' }).Count } else { 0 }
                        }
                    }
                }
            } -ArgumentList $split.Module | Receive-Job -Wait -AutoRemoveJob
            $errors.Count | Should -Be 2
            $errors[0].Id | Should -Be 'LibTorchCudaNotFound,PSStableDiffusion.GetSDDeviceCommand'
            $errors[1].Id | Should -Be 'LibTorchCudaNotFound,PSStableDiffusion.NewSDImageCommand'
            foreach ($record in $errors) {
                $record.Category | Should -Be 'NotInstalled'
                $record.Target | Should -Be $cpuOnly
                $record.Message | Should -Match ([regex]::Escape("$(Get-LibTorchFileName torch_cuda) not found in $(Join-Path $cpuOnly 'lib')"))
                $record.Action | Should -Match '-Backend cuda -LibTorch'
                $record.Loaded | Should -Be 0
            }
        }
    }
}
