BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:devices = @(Get-SDDevice)
    $script:cpu = $devices | Where-Object Type -EQ 'cpu'
}

Describe 'Get-SDDevice' {
    It 'lists the CPU first, once' {
        $devices.Count | Should -BeGreaterThan 0
        $devices[0].Device | Should -Be 'cpu'
        @($cpu).Count | Should -Be 1
        $cpu | Should -BeOfType 'PSStableDiffusion.SDDeviceInfo'
        $cpu.Index | Should -BeNullOrEmpty
    }

    It 'loads libtorch from the module folder' {
        # Get-SDDevice has called into libtorch, so its libraries are mapped into this process by now.
        $natives = @((Get-Process -Id $PID).Modules | Where-Object { $_.ModuleName -match '^(lib)?(LibTorchSharp|torch_cpu)\.(so|dll|dylib)$' })
        $natives.Count | Should -Be 2
        foreach ($native in $natives) {
            Split-Path $native.FileName | Should -Be $module.ModuleBase
        }
    }

    It 'reports the logical cores this process may use and the libtorch thread count' {
        $cpu.LogicalCores | Should -Be ([Environment]::ProcessorCount)
        $cpu.Threads | Should -BeGreaterThan 0
        $cpu.Threads | Should -BeLessOrEqual $cpu.LogicalCores
    }

    It 'reports AVX512_BF16 as the platform tells it' {
        if ($IsLinux -and (Test-Path /proc/cpuinfo)) {
            $flags = (Get-Content /proc/cpuinfo | Where-Object { $_ -match '^flags\s*:' } | Select-Object -First 1) -replace '^flags\s*:\s*', ''
            $cpu.HasAvx512Bf16 | Should -Be (($flags -split '\s+') -contains 'avx512_bf16')
            $model = (Get-Content /proc/cpuinfo | Where-Object { $_ -match '^model name\s*:' } | Select-Object -First 1) -replace '^model name\s*:\s*', ''
            if ($model) { $cpu.Name | Should -Be $model }
        }
        elseif ([System.Runtime.Intrinsics.X86.X86Base]::IsSupported) {
            $cpu.HasAvx512Bf16 | Should -BeOfType [bool]
        }
        else {
            $cpu.HasAvx512Bf16 | Should -BeNullOrEmpty
        }
    }

    It 'reports the TorchSharp version of the shipped assembly' {
        $info = [System.Diagnostics.FileVersionInfo]::GetVersionInfo((Join-Path $module.ModuleBase 'TorchSharp.dll'))
        $cpu.TorchSharpVersion | Should -Be ($info.ProductVersion -split '\+')[0]
        $cpu.LibTorchVersion | Should -Match '^\d+\.\d+'
    }

    It 'reports the backend the module was built with' {
        $cpu.Backend | Should -BeIn 'cpu', 'cuda'
        if ($env:SD_BACKEND) { $cpu.Backend | Should -Be $env:SD_BACKEND }
        $devices.Backend | Select-Object -Unique | Should -Be $cpu.Backend
    }

    It 'lists one cuda:N device per GPU libtorch sees' {
        $expected = if ([TorchSharp.torch+cuda]::is_available()) { [TorchSharp.torch+cuda]::device_count() } else { 0 }
        $gpus = @($devices | Where-Object Type -EQ 'cuda')
        $gpus.Count | Should -Be $expected
        for ($index = 0; $index -lt $gpus.Count; $index++) {
            $gpus[$index].Device | Should -Be "cuda:$index"
            $gpus[$index].Index | Should -Be $index
        }
    }

    It 'lists no GPU in a cpu build' {
        if ($cpu.Backend -eq 'cpu') { @(Get-SDDevice -Type cuda).Count | Should -Be 0 }
        else { @(Get-SDDevice -Type cuda).Count | Should -Be @($devices | Where-Object Type -EQ 'cuda').Count }
    }

    It 'filters by -Type' {
        $only = @(Get-SDDevice -Type cpu)
        $only.Count | Should -Be 1
        $only[0].Device | Should -Be 'cpu'
        @(Get-SDDevice cpu, cuda).Count | Should -Be $devices.Count
    }

    It 'rejects an unknown -Type' {
        { Get-SDDevice -Type tpu } | Should -Throw -ErrorId 'ParameterArgumentValidationError,PSStableDiffusion.GetSDDeviceCommand'
    }

    It 'is shown with the module''s table view' {
        $text = Get-SDDevice -Type cpu | Out-String
        $text | Should -Match 'Device\s+Name\s+Cores\s+Threads\s+BF16\s+LibTorch\s+Backend'
        $text | Should -Match '(?m)^cpu\s'
    }
}
