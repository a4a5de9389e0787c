# Get-SDEngine: what the engine cache holds after generations, filtering, the table view, and one engine shared by
# every runspace of the process.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp
    $script:started = [datetimeoffset]::Now
    New-SDImage 'a test' -Model $model -Steps 1 -Seed 1 | Out-Null
}

AfterAll {
    Clear-SDEngine -Model $model
}

Describe 'Get-SDEngine' {
    It 'lists the model after a generation, with its memory and use' {
        $engines = @(Get-SDEngine | Where-Object Model -EQ $model)
        $engines.Count | Should -Be 1
        $engine = $engines[0]
        $engine | Should -BeOfType 'PSStableDiffusion.Engine.EngineInfo'
        $engine.Device | Should -Be 'cpu'
        $engine.Precision | Should -Be 'float32'
        $engine.Kind | Should -Be 'txt2img'
        $engine.MemoryBytes | Should -BeGreaterThan 0
        $engine.Uses | Should -BeGreaterOrEqual 1
        $engine.Busy | Should -BeFalse
        $engine.LastUsed | Should -BeGreaterOrEqual $started
        $engine.LoadedAt | Should -BeLessOrEqual $engine.LastUsed
    }

    It 'counts each call that uses the engine' {
        $before = (Get-SDEngine -Model $model).Uses
        New-SDImage 'another test' -Model $model -Steps 1 -Seed 2 | Out-Null
        (Get-SDEngine -Model $model).Uses | Should -Be ($before + 1)
    }

    It 'filters by a wildcard pattern on the model path, case-insensitively' {
        @(Get-SDEngine -Model '*TXT2IMG_EPS_DPMPP*').Model | Should -Contain $model
        Get-SDEngine -Model '*no-such-model*' | Should -BeNullOrEmpty
    }

    It 'is shown as a table with the memory in MiB' {
        $engine = Get-SDEngine -Model $model
        $text = $engine | Out-String -Width 200
        $text | Should -Match 'Device\s+Precision\s+Kind\s+MiB\s+LastUsed\s+Uses\s+Busy\s+Model'
        $mib = '{0:N1}' -f ($engine.MemoryBytes / 1MB)
        $text | Should -Match ("cpu\s+float32\s+txt2img\s+{0}\s" -f [regex]::Escape($mib))
        $text | Should -Match ([regex]::Escape((Split-Path $model -Leaf)) + '\s*$')
    }

    It 'shares one engine between runspaces: three parallel calls load the model once' {
        Clear-SDEngine -Model $model
        $modulePath = $module.ModuleBase
        $images = @(1..3 | ForEach-Object -ThrottleLimit 3 -Parallel {
                Import-Module $using:modulePath
                New-SDImage 'a parallel test' -Model $using:model -Steps 1 -Seed $_
            })
        @($images.Seed | Sort-Object) | Should -Be @(1, 2, 3)
        $engines = @(Get-SDEngine | Where-Object Model -EQ $model)
        $engines.Count | Should -Be 1
        $engines[0].Uses | Should -Be 3
        $engines[0].Busy | Should -BeFalse
    }
}
