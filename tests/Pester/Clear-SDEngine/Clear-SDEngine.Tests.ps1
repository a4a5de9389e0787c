# Clear-SDEngine: freeing all engines or some, -WhatIf, -PassThru and pipeline input from Get-SDEngine.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot '../TestUtilities.psm1') -Force
    $script:module = Import-SDModule
    $script:model = Get-SDGoldenModelPath -Case txt2img_eps_dpmpp

    function Use-Model {
        New-SDImage 'a test' -Model $model -Steps 1 -Seed 1 | Out-Null
        @(Get-SDEngine -Model $model).Count | Should -Be 1 -Because 'the generation loads the model'
    }
}

Describe 'Clear-SDEngine' {
    It 'empties the cache' {
        Use-Model
        Clear-SDEngine | Should -BeNullOrEmpty
        Get-SDEngine | Should -BeNullOrEmpty
    }

    It 'frees nothing with -WhatIf' {
        Use-Model
        Clear-SDEngine -WhatIf
        @(Get-SDEngine -Model $model).Count | Should -Be 1
    }

    It 'frees only the engines matching -Model, and -PassThru writes them' {
        Use-Model
        Clear-SDEngine -Model '*no-such-model*' -PassThru | Should -BeNullOrEmpty
        @(Get-SDEngine -Model $model).Count | Should -Be 1
        $freed = @(Clear-SDEngine -Model '*txt2img_eps_dpmpp*' -PassThru)
        $freed.Count | Should -Be 1
        $freed[0] | Should -BeOfType 'PSStableDiffusion.Engine.EngineInfo'
        $freed[0].Model | Should -Be $model
        $freed[0].MemoryBytes | Should -BeGreaterThan 0
        Get-SDEngine -Model $model | Should -BeNullOrEmpty
    }

    It 'frees the engines piped from Get-SDEngine' {
        Use-Model
        Get-SDEngine -Model $model | Clear-SDEngine
        Get-SDEngine -Model $model | Should -BeNullOrEmpty
    }

    It 'lets the next call load the model again' {
        Use-Model
        Clear-SDEngine -Model $model
        Use-Model
        (Get-SDEngine -Model $model).Uses | Should -Be 1
    }
}
